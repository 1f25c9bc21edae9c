"""Training commands: `python -m facecodec.train.<name>`; each shows progress and resumes."""
