"""Encode/decode of the scalable face bitstream: base layer, enhancement layer, profiles."""
