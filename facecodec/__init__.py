"""facecodec: the scalable face codec shared by the edge encoder and the cloud services.

Front end (detect, landmarks, align, describe), the bitstream container, the codec profiles
(base layer + enhancement layer), the learned models, training and evaluation.
It imports no service and no web framework.
"""

__version__ = "0.1.0"
