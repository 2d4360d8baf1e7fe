"""moco-transfer-bench, installed under one name: mocobench.<room> for each folder of the repository
(common, data, pretrain, detection, segmentation, runner, reporting, benchmarks), plus mocobench.records,
the record schema. Nothing is imported here."""
