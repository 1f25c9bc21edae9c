"""The web console in a real headless Chromium against the real stack (Redis, edge, analyzer,
reconstructor over loopback, mutual TLS between them): log in, a sighting appearing live after a frame
is posted to the edge, a face's levels stepped through, enrolment, a correction, a cluster merge, a
history search, and a key without pixel scopes seeing no image. Screenshots go to
bench/results/console/ (README shows one).

Needs Debian's `chromium` and `chromium-driver` (`make system` installs them; CI runs it): skipped without them,
except in CI (CI set), where their absence fails."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.demo import compose_frame
from devstack.stack import Stack
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
LFW = ROOT / "samples" / "lfw"
# Screenshots go to bench/results/console/ (README shows one) when asked for, e.g.
# `CONSOLE_SCREENSHOTS=bench/results/console pytest tests/test_console.py`; otherwise to a scratch folder,
# so a test run leaves the committed ones untouched.
SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tempfile.mkdtemp(prefix="console-shots-")).resolve()
SHOTS.mkdir(parents=True, exist_ok=True)
WAIT_S = 90

pytestmark = pytest.mark.e2e


def _browser_or_skip() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        chromium = None
    if chromium and driver:
        return chromium, driver
    why = "Chromium, chromedriver or selenium missing (`make test` installs them with apt-get and the dev extra)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("console-stack")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium, driver_path = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def frame_of(*paths: Path) -> bytes:
    return compose_frame(list(paths))


def post_frame(stack: Stack, camera: str, *paths: Path) -> list[str]:
    r = httpx.post(f"{stack.url('edge_encoder')}/v1/cameras/{camera}/frames", content=frame_of(*paths), timeout=120,
                   headers={"content-type": "image/jpeg", "authorization": f"Bearer {stack.camera_token}"})
    assert r.status_code == 201, r.text
    return [f["face_id"] for f in sorted(r.json()["faces"], key=lambda f: f["bbox"][0])]  # left to right


def decided(stack: Stack, face_id: str) -> dict | None:
    with stack.client() as client:
        face = client.get(f"{stack.url('cloud_analyzer')}/v1/faces/{face_id}").json()
    return face if face.get("status") not in (None, "pending") else None


def wait_css(driver, css: str, timeout: float = WAIT_S):
    """The first visible element matching `css`, once there is one."""
    from selenium.webdriver.common.by import By

    def shown(d):
        return next((e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None)

    return wait_for(driver, shown, css, timeout)


def wait_for(driver, predicate, what: str, timeout: float = WAIT_S):
    """`predicate(driver)` truthy within `timeout`; on timeout the failure says what the page said (its
    status line and the browser's console)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    rerendered = (NoSuchElementException, StaleElementReferenceException)  # the view redrew meanwhile: ask again
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=rerendered).until(
            lambda d: predicate(d), what)
    except TimeoutException:
        status = driver.execute_script("return document.getElementById('status')?.textContent")
        console = [entry["message"] for entry in driver.get_log("browser")]
        pytest.fail(f"waited {timeout} s for {what}; status: {status!r}; console: {console}")


def loaded_images(driver, css: str) -> int:
    """Images under `css` that decoded (a blob: or data: URL with pixels)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].filter(i => i.complete && i.naturalWidth > 0 "
        "&& /^(blob|data):/.test(i.src)).length", css)


def login(driver, stack: Stack, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{stack.url('cloud_analyzer')}/console/")
    driver.execute_script("sessionStorage.clear()")  # whoever was logged in in this tab before
    driver.refresh()
    wait_css(driver, "#api-key").send_keys(key)
    recon = driver.find_element(By.ID, "reconstructor-url")
    assert recon.get_attribute("value") == stack.url("cloud_reconstructor")  # from /console/config.json
    driver.find_element(By.ID, "login-submit").click()
    wait_css(driver, "#nav")


def key_with(stack: Stack, name: str, scopes: list[str]) -> str:
    with stack.client() as client:
        r = client.post(f"{stack.url('cloud_analyzer')}/v1/keys", json={"name": name, "scopes": scopes})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def test_console_is_static_with_a_strict_policy_and_keys_can_ask_for_their_scopes(stack: Stack) -> None:
    analyzer, recon = stack.url("cloud_analyzer"), stack.url("cloud_reconstructor")
    index = httpx.get(f"{analyzer}/console/", timeout=10)
    assert index.status_code == 200 and index.headers["cache-control"] == "no-store"
    csp = index.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp and f"connect-src 'self' {recon}" in csp
    assert not re.search(r"<script(?![^>]*\bsrc=)", index.text)  # no inline script, no inline handlers
    assert not re.search(r"\son[a-z]+=", index.text)
    script = httpx.get(f"{analyzer}/console/js/app.js", timeout=10)
    assert script.status_code == 200 and script.headers["cache-control"] == "no-cache"
    assert "javascript" in script.headers["content-type"]
    assert httpx.get(f"{analyzer}/console/config.json").json() == {"reconstructor_url": recon}
    assert httpx.get(f"{analyzer}/console", follow_redirects=False).status_code == 308
    assert httpx.get(f"{analyzer}/console/../secrets/admin_key").status_code in (401, 404)

    token = key_with(stack, "meta", ["sightings:read"])
    me = httpx.get(f"{analyzer}/v1/keys/me", headers={"authorization": f"Bearer {token}"}).json()
    assert me["name"] == "meta" and me["scopes"] == me["holds"] == ["sightings:read"] and "token" not in me
    viewer_key = key_with(stack, "viewer", ["faces:view"])
    viewer = httpx.get(f"{analyzer}/v1/keys/me", headers={"authorization": f"Bearer {viewer_key}"})
    assert viewer.json()["holds"] == ["faces:view_base", "faces:view"]  # implied scopes spelled out
    assert httpx.get(f"{analyzer}/v1/keys/me").status_code == 401
    # The reconstructor answers the console's origin only (a preflight carries no key).
    asked = {"access-control-request-method": "GET", "access-control-request-headers": "authorization"}
    ok = httpx.options(f"{recon}/v1/faces/x/image", headers={"origin": analyzer, **asked})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == analyzer
    other = httpx.options(f"{recon}/v1/faces/x/image", headers={"origin": "http://evil.example", **asked})
    assert "access-control-allow-origin" not in other.headers


def test_a_sighting_appears_live_and_its_levels_step_through(stack: Stack, browser) -> None:
    from selenium.webdriver.common.by import By

    login(browser, stack, stack.admin_key)
    browser.get(f"{stack.url('cloud_analyzer')}/console/#/live")
    wait_for(browser, lambda d: "live" in d.find_element(By.ID, "feed-state").text, "the event feed live")
    assert not browser.find_elements(By.CSS_SELECTOR, "tr.sighting")
    (face_id,) = post_frame(stack, "door", LFW / "Colin_Powell" / "Colin_Powell_0001.jpg")
    row = wait_css(browser, f'tr.sighting[data-face="{face_id}"]')  # no reload: the feed brought it
    assert "door" in row.text
    wait_for(browser, lambda d: loaded_images(d, "tr.sighting img.thumb") == 1, "its base-only preview")
    browser.save_screenshot(str(SHOTS / "live.png"))

    row.click()
    wait_css(browser, "#face-meta")
    face = wait_until(lambda: decided(stack, face_id), 60, 0.3, "the face decided")
    buttons = browser.find_elements(By.CSS_SELECTOR, "#levels button.level")
    assert len(buttons) == 1 + face["enhancement_levels"] >= 2
    for button in buttons:
        level = button.get_attribute("data-level")
        button.click()
        wait_for(browser, lambda d, lv=level: "PSNR" in d.find_element(By.ID, "level-caption").text
                 and d.find_element(By.CSS_SELECTOR, "#levels button.active").get_attribute("data-level") == lv,
                 f"level {level}'s bytes and PSNR")
        wait_for(browser, lambda d: loaded_images(d, "#level-view img") == 3, "the level, its JPEG and its WebP")
        caption = browser.find_element(By.ID, "level-caption").text
        assert re.search(r"\d+ bytes", caption), caption
        assert "reference" in browser.find_element(By.ID, "reference-note").text
    browser.save_screenshot(str(SHOTS / "face.png"))
    with stack.client() as client:  # every level shown was a view the reconstructor audited
        views = client.get(f"{stack.url('cloud_analyzer')}/v1/audit", params={"face_id": face_id}).json()["items"]
    layers = {v["layers"] for v in views if v["action"] == "face.view"}
    assert {"base", *(f"1-{k}" for k in range(1, face["enhancement_levels"] + 1))} <= layers, layers
    assert any(v["action"] == "face.compare" for v in views)
    with stack.client() as client:  # the comparison's numbers: JPEG and WebP held to the level's bytes
        for level in range(face["enhancement_levels"]):
            c = client.get(f"{stack.url('cloud_reconstructor')}/v1/faces/{face_id}/comparison",
                           params={"level": level}).json()
            assert c["budget_bytes"] == sum(c["layer_bytes"].values()) and c["psnr_db"] > 10
            for coded in (c["jpeg"], c["webp"]):
                assert coded["bytes"] <= c["budget_bytes"] or not coded["within_budget"]
        too_far = client.get(f"{stack.url('cloud_reconstructor')}/v1/faces/{face_id}/comparison",
                             params={"level": face["enhancement_levels"] + 1})
        assert too_far.status_code == 422


def test_enrol_then_correct_a_match(stack: Stack, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    login(browser, stack, stack.admin_key)
    browser.get(f"{stack.url('cloud_analyzer')}/console/#/identities")
    # The quality gate's words reach the user: a photo without a face is refused with the API's reason.
    blank = SHOTS.parent / "console-blank.png"
    from PIL import Image

    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    try:
        wait_css(browser, "#enrol-name").send_keys("Nobody")
        browser.find_element(By.ID, "enrol-files").send_keys(str(blank))
        browser.find_element(By.CSS_SELECTOR, "#enrol button[type=submit]").click()
        wait_for(browser, lambda d: "no face found" in d.find_element(By.ID, "status").text, "the refusal shown")
    finally:
        blank.unlink()

    browser.refresh()  # a fresh form (the refused file is still chosen in this one)
    wait_css(browser, "#enrol-name").send_keys("Tony Blair")
    photos = [LFW / "Tony_Blair" / f"Tony_Blair_000{i}.jpg" for i in (1, 2)]
    browser.find_element(By.ID, "enrol-files").send_keys("\n".join(str(p) for p in photos))
    browser.find_element(By.CSS_SELECTOR, "#enrol button[type=submit]").click()
    card = wait_css(browser, ".identity .name")
    assert card.text == "Tony Blair"
    assert "2 templates" in browser.find_element(By.CSS_SELECTOR, ".identity").text

    (face_id,) = post_frame(stack, "lobby", LFW / "Tony_Blair" / "Tony_Blair_0003.jpg")
    face = wait_until(lambda: decided(stack, face_id), 60, 0.3, "the face decided")
    assert face["identity_name"] == "Tony Blair"
    browser.get(f"{stack.url('cloud_analyzer')}/console/#/face/{face_id}")
    wait_css(browser, "#reject").click()  # "Not Tony Blair"
    wait_for(browser, lambda d: "reject" in d.find_element(By.ID, "corrected").text, "the rejection shown")
    assert decided(stack, face_id)["identity_id"] is None
    Select(wait_css(browser, "#reassign-to")).select_by_visible_text("Tony Blair")
    browser.find_element(By.ID, "add-as-template").click()
    browser.find_element(By.ID, "reassign").click()
    wait_for(browser, lambda d: "reassign" in d.find_element(By.ID, "corrected").text, "the reassignment shown")
    assert decided(stack, face_id)["identity_name"] == "Tony Blair"
    assert identity(stack)["templates"] == 3  # the corrected face became a template
    browser.find_element(By.ID, "add-face").click()  # once more, as a template of its own (its id kept)
    wait_for(browser, lambda d: "1 template(s) added to Tony Blair" in d.find_element(By.ID, "status").text,
             "the template added")
    assert identity(stack)["templates"] == 4

    browser.get(f"{stack.url('cloud_analyzer')}/console/#/identities")
    rename = wait_css(browser, ".identity .rename-name")
    rename.clear()
    rename.send_keys("Anthony Blair")
    browser.find_element(By.CSS_SELECTOR, ".identity .rename").click()
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".identity .name").text == "Anthony Blair", "renamed")
    wait_css(browser, ".identity .templates-box summary").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".identity .template")) == 4, "4 templates")
    faced = browser.find_elements(By.CSS_SELECTOR, ".identity .template img")
    assert faced  # a template added from a sighting shows that face; uploaded photos are not kept
    browser.find_element(By.CSS_SELECTOR, ".identity .remove-template").click()
    wait_for(browser, lambda d: "template removed" in d.find_element(By.ID, "status").text, "the template removed")
    assert identity(stack) | {"templates": 3} == identity(stack) and identity(stack)["name"] == "Anthony Blair"
    browser.save_screenshot(str(SHOTS / "identities.png"))


def identity(stack: Stack, name: str | None = None) -> dict:
    with stack.client() as client:
        items = client.get(f"{stack.url('cloud_analyzer')}/v1/identities").json()["items"]
    return next(i for i in items if name is None or i["name"] == name)


def clusters(stack: Stack) -> list[dict]:
    with stack.client() as client:
        return client.get(f"{stack.url('cloud_analyzer')}/v1/clusters", params={"limit": 500}).json()["items"]


def test_merge_clusters_then_search_history(stack: Stack, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    analyzer = stack.url("cloud_analyzer")
    faces = post_frame(stack, "yard", LFW / "Laura_Bush" / "Laura_Bush_0001.jpg",
                       LFW / "Jennifer_Capriati" / "Jennifer_Capriati_0001.jpg")
    laura, jennifer = (wait_until(lambda f=f: decided(stack, f), 60, 0.3, "the faces decided")["cluster_id"]
                       for f in faces)
    assert laura and jennifer and laura != jennifer  # two unknown people, two clusters

    login(browser, stack, stack.admin_key)
    browser.get(f"{analyzer}/console/#/clusters")
    card = wait_css(browser, f'.cluster[data-cluster="{laura}"]')
    Select(card.find_element(By.CSS_SELECTOR, ".merge-other")).select_by_value(jennifer)
    card.find_element(By.CSS_SELECTOR, ".merge").click()
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, f'.cluster[data-cluster="{jennifer}"]'),
             "the merged cluster gone")
    assert decided(stack, faces[1])["cluster_id"] == laura
    browser.save_screenshot(str(SHOTS / "clusters.png"))

    # Undo it: Jennifer's face split off into a cluster of its own, which is then promoted to a person.
    card = wait_css(browser, f'.cluster[data-cluster="{laura}"]')
    Select(card.find_element(By.CSS_SELECTOR, ".split-face")).select_by_value(faces[1])
    card.find_element(By.CSS_SELECTOR, ".split").click()
    wait_for(browser, lambda d: "face split off" in d.find_element(By.ID, "status").text, "the split")
    apart = decided(stack, faces[1])["cluster_id"]
    assert apart not in (None, laura)
    card = wait_css(browser, f'.cluster[data-cluster="{apart}"]')
    card.find_element(By.CSS_SELECTOR, ".promote-name").send_keys("Jennifer Capriati")
    card.find_element(By.CSS_SELECTOR, ".promote").click()
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, f'.cluster[data-cluster="{apart}"]'), "promoted")
    assert decided(stack, faces[1])["identity_name"] == "Jennifer Capriati"

    # An unknown cluster that is an enrolled person: merged into the identity, its sightings named.
    (door,) = [c["cluster_id"] for c in clusters(stack) if "door" in c["cameras"]]
    with stack.client() as client:
        photos = [("images", (f"{i}.jpg", (LFW / "Colin_Powell" / f"Colin_Powell_000{i}.jpg").read_bytes(),
                              "image/jpeg")) for i in (2, 3)]
        assert client.post(f"{analyzer}/v1/identities", data={"name": "Colin Powell"}, files=photos).status_code == 201
    browser.refresh()
    card = wait_css(browser, f'.cluster[data-cluster="{door}"]')
    Select(card.find_element(By.CSS_SELECTOR, ".into-identity-id")).select_by_visible_text("Colin Powell")
    card.find_element(By.CSS_SELECTOR, ".into-identity").click()
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, f'.cluster[data-cluster="{door}"]'),
             "the cluster merged into the identity")
    with stack.client() as client:
        door_faces = client.get(f"{analyzer}/v1/sightings", params={"camera_id": "door"}).json()["items"]
    assert {s["identity_name"] for s in door_faces} == {"Colin Powell"}
    assert identity(stack, "Colin Powell")["templates"] > 2

    browser.get(f"{analyzer}/console/#/history")
    wait_css(browser, "#history-file").send_keys(str(LFW / "Laura_Bush" / "Laura_Bush_0002.jpg"))
    browser.find_element(By.CSS_SELECTOR, "#history-form button[type=submit]").click()
    wait_css(browser, '.timeline[data-camera="yard"] .dot')
    hits = browser.find_elements(By.CSS_SELECTOR, ".timeline .dot")
    assert hits and not browser.find_elements(By.CSS_SELECTOR, '.timeline[data-camera="door"]')
    browser.save_screenshot(str(SHOTS / "history.png"))
    hits[0].click()
    wait_for(browser, lambda d: faces[0] in d.find_element(By.CSS_SELECTOR, "h1").text, "the hit's face opened")

    browser.get(f"{analyzer}/console/#/operators")
    wait_css(browser, "#audit tbody tr")
    cameras = {row.text.split()[0]: row.text for row in browser.find_elements(By.CSS_SELECTOR, "#cameras tbody tr")}
    assert set(cameras) == {"door", "lobby", "yard"}
    assert cameras["yard"].endswith(" 2 0.4"), cameras  # 2 sightings, 2 faces in the last 5 minutes
    (edge,) = browser.find_elements(By.CSS_SELECTOR, "#edges tbody tr")  # the stack's one edge, uplinking
    assert edge.text.split()[:2] == ["edge-1", "ok"], edge.text
    wait_for(browser, lambda d: re.search(r"ingest [\d.]+ faces/s, decisions [\d.]+/s .* ingest stream 0",
                                          d.find_element(By.ID, "throughput").text), "the throughput measured")
    browser.save_screenshot(str(SHOTS / "operators.png"))


def test_a_key_without_pixel_scopes_sees_no_image(stack: Stack, browser) -> None:
    from selenium.webdriver.common.by import By

    analyzer = stack.url("cloud_analyzer")
    token = key_with(stack, "dashboard", ["sightings:read", "events:read", "identities:read"])
    login(browser, stack, token)
    browser.get(f"{analyzer}/console/#/live")
    wait_css(browser, "tr.sighting")
    assert browser.find_elements(By.CSS_SELECTOR, "tr.sighting .nopix")
    assert not browser.find_elements(By.CSS_SELECTOR, "img")
    nav = {a.text for a in browser.find_elements(By.CSS_SELECTOR, "#nav a") if a.is_displayed()}
    assert "History search" not in nav and "Live" in nav  # no faces:search
    browser.find_element(By.CSS_SELECTOR, "tr.sighting").click()
    wait_css(browser, "#no-pixels")
    assert not browser.find_elements(By.CSS_SELECTOR, "img") and not browser.find_elements(By.ID, "corrections")
    with stack.client() as client:
        entries = client.get(f"{analyzer}/v1/audit", params={"action": "face.view"}).json()["items"]
        me = httpx.get(f"{analyzer}/v1/keys/me", headers={"authorization": f"Bearer {token}"}).json()
    assert not [e for e in entries if e["key_id"] == me["key_id"]]  # it never asked the reconstructor

    with stack.client() as client:  # revoked while logged in: the next request lands on the login form
        assert client.delete(f"{analyzer}/v1/keys/{me['key_id']}").status_code == 204
    browser.find_element(By.CSS_SELECTOR, '#nav a[href="#/live"]').click()
    wait_css(browser, "#api-key")
    assert "log in again" in browser.find_element(By.ID, "status").text
    assert browser.execute_script("return sessionStorage.length") == 0  # the key is gone from the tab


def test_erase_says_what_goes_where_then_operators_follow_it(stack: Stack, browser) -> None:
    from selenium.webdriver.common.by import By

    analyzer = stack.url("cloud_analyzer")
    login(browser, stack, stack.admin_key)
    browser.get(f"{analyzer}/console/#/identities")
    card = wait_css(browser, f'.identity[data-identity="{identity(stack, "Colin Powell")["identity_id"]}"]')
    card.find_element(By.CSS_SELECTOR, ".erase").click()
    dialog = wait_css(browser, "#confirm")
    said = dialog.text
    assert "Erase Colin Powell everywhere?" in said and "edge-1: 1 faces" in said, said
    assert re.search(r"\d+ templates, 1 sightings named as them", said), said
    browser.save_screenshot(str(SHOTS / "erase.png"))
    browser.find_element(By.ID, "confirm-yes").click()
    wait_for(browser, lambda d: "erasure" in d.find_element(By.ID, "status").text, "the erasure started")
    assert not identities_named(stack, "Colin Powell")

    browser.get(f"{analyzer}/console/#/operators")
    wait_css(browser, "#erasures tbody tr")
    wait_for(browser, lambda d: (d.refresh(), "edge-1: confirmed" in wait_css(d, "#erasures tbody tr").text)[1],
             "the edge's confirmation shown", timeout=60)
    assert "yes" in wait_css(browser, "#erasures tbody tr").text  # complete: every edge confirmed
    wait_for(browser, lambda d: "faces/s" in d.find_element(By.ID, "throughput").text, "the throughput")
    browser.save_screenshot(str(SHOTS / "operators.png"))


def identities_named(stack: Stack, name: str) -> list[dict]:
    with stack.client() as client:
        return client.get(f"{stack.url('cloud_analyzer')}/v1/identities", params={"name": name}).json()["items"]
