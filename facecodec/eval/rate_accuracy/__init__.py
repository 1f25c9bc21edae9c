"""Rate-accuracy benchmark: bytes per face against recognition accuracy, for every way of sending a face.

    python -m facecodec.eval.rate_accuracy --help

One concept per module: `evalset` (LFW pairs and evaluation identities), `scoring` (verification,
TAR, rank-1), `descriptor_codecs` (quantiser baselines), `descriptor_rows` (quantiser and base-layer
rows), `cache` (descriptors cached per image), `pool` (describing in a fork pool), `image_rows`
(compress-then-analyse rows), `summary`, `plots`, and `cli` (the command line; its docstring is the
protocol).
"""
