"""The fine-tuned generation (issue 11, `models/dfd-mnv2`): MobileNetV2 trained end to end on
face crops, exported to LiteRT (`dfd-train train`, `bands`, `verdicts`)."""
