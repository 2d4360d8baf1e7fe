"""MoCo v1/v2 pretraining (and the supervised baseline): `python -m mocobench.pretrain
{train,submit,knn,lincls,upgrade}`.

Library entry points: pretrain.moco.MoCo (the method), pretrain.trainer.Trainer (the loop),
pretrain.config.load_config (the typed PretrainConfig: YAML + overrides), pretrain.knn / pretrain.lincls (evaluations).
"""
