"""The frozen-feature generation (issue 18, `models/dfd-clip`, served): a logistic head on CLIP
ViT-B/16 class tokens, chosen by a leave-one-source-out study (`dfd-train features`, `clip`,
`clip-serving`, `clip-ablation`)."""
