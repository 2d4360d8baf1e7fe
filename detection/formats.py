"""The checkpoint layouts the converter reads: one entry per layout, as data.

Each `Layout` says where its backbone lives and what else a file of that layout holds, as the framework
that writes it lays it out (each checked against the framework's own checkpoint-writing code):

- container: where the state dict sits in the file, as paths of keys tried in order (() = the file itself
  is the state dict), with top-level keys the file must also have (`needs`);
- prefixes: the backbone's key prefix inside that state dict once DataParallel/DDP `module.` prefixes are
  stripped (the first one present is used);
- drops: key prefixes (or exact keys) of what the framework stores besides the backbone -- heads,
  momentum copies, queues -- dropped and listed;
- siblings: other model containers in the file, dropped whole (DINO's student, VISSL's heads);
- duplicate_of: a second copy of the backbone that must hold the same tensors (raw DenseCL files); with
  duplicate_optional the copy may be absent, and is checked where present (early mmselfsup 1.x files);
- index_names: the backbone is `nn.Sequential(*resnet.children()[:-1])` (lightly), keys 0, 1, 4-7.

A layout *fits* a file when its container and backbone are there and every other tensor is one it drops;
the converter (detection/convert/) detects, unwraps, keeps and proves; nothing here runs. `arch` names the
architecture family whose extractor reads the layout (detection/convert/archs.py).
Every layout here is a torchvision-style ResNet trained on torchvision's RGB normalisation: the detection
configs' PIXEL_MEAN/PIXEL_STD and RGB input fit all of them (`pixels`). MSRA caffe weights are a Detectron2
.pkl, recognised from its content (detection/convert/d2_pickles.py), not a layout. `kind` is what the layout
alone proves about the training (moco for MoCo's own layouts); whether weights are supervised comes from
evidence in the file (runner/weights.py), never from a layout.
"""
from __future__ import annotations

from dataclasses import dataclass, field

TORCHVISION_PIXELS = "torchvision RGB normalisation (PIXEL_MEAN 123.675,116.28,103.53; PIXEL_STD 58.395,57.12,57.375)"


@dataclass(frozen=True)
class Layout:
    name: str
    source: str                                   # the projects that write this layout
    container: tuple[tuple[str, ...], ...]        # paths to the state dict, tried in order; () = the file
    prefixes: tuple[str, ...]                     # backbone prefix after `module.` stripping
    drops: tuple[str, ...] = ()                   # key prefixes dropped and listed
    needs: tuple[str, ...] = ()                   # top-level keys the file must have
    needs_one_of: tuple[tuple[str, ...], ...] = ()  # key paths of which the file must have one
    not_with: tuple[tuple[str, ...], ...] = ()    # key paths the file must not have (another layout's marks)
    siblings: tuple[tuple[str, ...], ...] = ()    # other model containers, dropped whole
    signature: tuple[str, ...] = ()               # key prefixes of which the state dict must hold one
    duplicate_of: str | None = None               # prefix of a second copy that must equal the backbone
    duplicate_optional: bool = False              # the copy may be absent (checked only where present)
    index_names: bool = False                     # lightly's nn.Sequential(*children()[:-1]) names
    arch: str = "resnet"                          # architecture family (detection/convert/archs.py)
    kind: str = "other"                           # what the layout alone proves about training: moco | other
    refuses: str = ""                             # what is refused beyond the generic checks, in words
    pixels: str = TORCHVISION_PIXELS
    notes: str = ""

    @property
    def detection(self) -> str:
        """The detection rule in words (for --list-formats and the docs)."""
        where = " or ".join("/".join(p) if p else "the file itself" for p in self.container)
        parts = [f"state dict in {where}"]
        if self.needs:
            parts.append("file has " + ", ".join(repr(n) for n in self.needs))
        if self.needs_one_of:
            parts.append("and one of " + ", ".join("/".join(p) for p in self.needs_one_of))
        if self.not_with:
            parts.append("and none of " + ", ".join("/".join(p) for p in self.not_with))
        parts.append("backbone under " + " or ".join(repr(p) if p else "no prefix" for p in self.prefixes)
                     + " (after any 'module.')")
        if self.duplicate_of:
            parts.append(f"and {'any' if self.duplicate_optional else 'its'} copy under {self.duplicate_of!r}"
                         + (" (must be equal)" if self.duplicate_optional else ""))
        if self.signature:
            parts.append("some key under " + " or ".join(repr(s) for s in self.signature))
        parts.append("every other tensor among the drops")
        return "; ".join(parts)


_FLAT, _SD, _MODEL = (), ("state_dict",), ("model",)
_LIGHTNING = ("pytorch-lightning_version",)
# mmengine's marks: its Runner writes message_hub and meta.mmengine_version; mmpretrain's publish_model.py
# drops message_hub and adds meta.mmpretrain_version. mmcv 1.x (OpenSelfSup, mmselfsup 0.x) has neither.
_MMENGINE = (("message_hub",), ("meta", "mmengine_version"), ("meta", "mmpretrain_version"))

LAYOUTS: dict[str, Layout] = {lay.name: lay for lay in (
    Layout("moco", "MoCo v1/v2 (official and this suite), PCL; {epoch, arch, state_dict, optimizer}",
           (_SD, _FLAT), ("encoder_q.",),
           drops=("encoder_k.", "queue", "queue_ptr"), kind="moco",
           notes="encoder_q.fc (linear or MLP head) is dropped with the other fc tensors"),
    Layout("moco-v3", "MoCo v3 ResNet; {epoch, arch, state_dict, optimizer}", (_SD, _FLAT), ("base_encoder.",),
           drops=("momentum_encoder.", "predictor."), kind="moco",
           notes="base_encoder.fc (the projection MLP) is dropped"),
    Layout("torchvision", "torchvision (also legacy files without num_batches_tracked), timm resnet (.pth or "
                          ".safetensors), hub files of DINO / Barlow Twins / VICReg (no fc), released DenseCL "
                          "{state_dict, author}, this suite's supervised pretraining",
           (_FLAT, _SD, _MODEL), ("",),
           refuses="deep stems (timm resnet*d, mmpretrain deep_stem: conv1.0, ..., ResNet-D downsample)"),
    Layout("swav", "SwAV, DeepCluster-v2, SeLa-v2 released .pth.tar (flat, module.) and their training "
                   "checkpoints {epoch, state_dict, optimizer, amp}",
           (_FLAT, _SD), ("",), drops=("projection_head.", "prototypes."),
           signature=("projection_head.", "prototypes."),
           notes="SwAV's ResNet pads by 1 with a parameter-free ConstantPad2d and its conv1 by 2: the same 3 "
                 "pixels as torchvision's conv1, so the weights compute the same features"),
    Layout("dino", "DINO ResNet-50 full checkpoint {student, teacher, optimizer, epoch, args, dino_loss, "
                   "fp16_scaler} (the hub file is the torchvision layout)",
           (("teacher",),), ("backbone.",), drops=("head.",), needs=("student",), siblings=(("student",),),
           notes="the teacher (EMA) backbone is kept, as DINO evaluates it; args (argparse.Namespace) is read "
                 "as an inert placeholder"),
    Layout("barlow-vicreg", "Barlow Twins (main.py: checkpoint.pth), VICReg (main_vicreg.py: model.pth) full "
                            "checkpoint {epoch, model, optimizer} (the hub resnet50.pth is the torchvision layout)",
           (_MODEL,), ("backbone.",), drops=("projector.", "bn."), needs=("optimizer",),
           notes="VICReg's ResNet pads like SwAV's (parameter-free ConstantPad2d)"),
    Layout("densecl-raw", "DenseCL raw training checkpoints, OpenSelfSup / mmselfsup 0.x (mmcv {meta, "
                          "state_dict, optimizer}); released DenseCL files are the torchvision layout",
           (_SD,), ("backbone.",), duplicate_of="encoder_q.0.", needs=("meta",), signature=("encoder_q.0.",),
           not_with=_MMENGINE,
           drops=("encoder_q.1.", "encoder_k.", "queue", "queue_ptr", "queue2", "queue2_ptr", "head."),
           refuses="files whose backbone.* and encoder_q.0.* copies differ"),
    Layout("pixpro", "PixPro {opt, model, optimizer, scheduler, epoch}", (_MODEL,), ("encoder.",),
           needs=("opt",), drops=("encoder_k.", "projector.", "projector_k.", "projector_instance.",
                                  "projector_instance_k.", "predictor.", "value_transform.")),
    Layout("pycontrast", "PyContrast (InfoMin, InsDis, PIRL, CMC, MoCo/PCL mode) {model, contrast, optimizer, "
                         "epoch[, model_ema, amp]}",
           (_MODEL,), ("encoder.", "encoder1."), needs=("contrast",), siblings=(("model_ema",),),
           drops=("encoder2.", "head.", "head_jig.", "head1.", "head2.", "head1_jig.", "head2_jig."),
           notes="the online model is kept (PyContrast's own detection converter reads it too); model_ema (the "
                 "momentum copy, no module. prefix) is dropped whole. CMC's encoder1 sees the L channel only: its "
                 "1-channel conv1 is refused as a wrong shape"),
    Layout("solo-learn", "solo-learn (BYOL, SimCLR, Barlow Twins, VICReg, ...) Lightning .ckpt",
           (_SD,), ("backbone.", "encoder."), needs=_LIGHTNING,
           drops=("momentum_backbone.", "momentum_encoder.", "projector.", "momentum_projector.", "predictor.",
                  "classifier.", "momentum_classifier.", "prototypes.", "head.", "momentum_head."),
           refuses="CIFAR stems (3x3 conv1, no max-pool)"),
    Layout("mmselfsup", "mmselfsup 1.x / mmpretrain (mmengine {meta, state_dict, message_hub, optimizer, "
                        "param_schedulers}; the model zoo's files from mmpretrain's publish_model.py: {meta, "
                        "state_dict})",
           (_SD,), ("backbone.",), needs=("meta",), needs_one_of=_MMENGINE,
           duplicate_of="encoder_q.0.", duplicate_optional=True,
           drops=("neck.", "head.", "encoder_q.1.", "encoder_k.", "target_net.", "momentum_encoder.", "teacher.",
                  "queue", "queue_ptr", "data_preprocessor."),
           notes="momentum copies are mmengine averaged models (encoder_k.module.0.*, target_net.module.0.*, their "
                 "steps counter); early 1.x files also hold encoder_q = Sequential(backbone, neck), whose copy of "
                 "the backbone must equal backbone.*. mmengine's meta and message hub objects are read as inert "
                 "placeholders; style='caffe' ResNets (stride in the 1x1 conv) cannot be told from the weights and "
                 "are not supported"),
    Layout("vissl", "VISSL {classy_state_dict: {base_model: {model: {trunk, heads}}}, phase_idx, iteration, type, "
                    "...}",
           (("classy_state_dict", "base_model", "model", "trunk"),), ("_feature_blocks.",),
           siblings=(("classy_state_dict", "base_model", "model", "heads"),),
           notes="numpy arrays (model-zoo files converted from Caffe2) are read as tensors. A trunk trained with "
                 "MODEL.INPUT_TYPE bgr expects BGR input, which the weights cannot tell: check the model's config "
                 "(lab trunks have a 1-channel conv1 and are refused)"),
    Layout("lightly", "lightly (its examples' Lightning modules saved as .ckpt, or the state dict of a lightly.models "
                      "model)", (_SD, _FLAT), ("backbone.", "teacher_backbone."),
           index_names=True, signature=("backbone.0.", "backbone_momentum.", "momentum_backbone.", "projection_head.",
                                        "prediction_head.", "prototypes.", "student_backbone."),
           drops=("backbone_momentum.", "momentum_backbone.", "projection_head.", "projection_head_momentum.",
                  "momentum_projection_head.", "prediction_head.", "prototypes.", "student_backbone.",
                  "teacher_head.", "student_head."),
           notes="the DINO example keeps student and teacher (teacher_backbone is kept, as DINO evaluates it); "
                 "lightly.models' own models name their momentum copy momentum_backbone"),
)}


@dataclass
class Detected:
    """A layout that matched a file, and how."""
    layout: Layout
    state: dict = field(repr=False)          # the container's tensors, `module.` stripped
    prefix: str = ""                         # the backbone prefix found
    unaccounted: list[str] = field(default_factory=list)  # tensors neither backbone nor a drop
