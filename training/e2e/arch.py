"""The networks `dfd-train train` trains end to end (`--arch`): one row each, so the loop, the
selection, the export and the study tables are the same for every network compared.

A row says how to build the network (with or without its pretrained weights), how to switch
between the head-only warm-up and the full phase, which weights must not move in training
(checked at the end, like the frozen BatchNorm statistics), and what is exported and served.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Arch:
    """One trainable network."""

    card_name: str
    build: Callable[[argparse.Namespace, bool], Any]  # (args, pretrained weights?) -> model
    set_phase: Callable[[Any, bool], None]  # (model, full phase?)
    frozen: Callable[[Any], list]  # arrays that must come out of training unchanged
    serving: Callable[[Any], Any]  # the P(fake)-only model that is exported
    frozen_what: str  # what `frozen` holds, for the card and the error
    describe: str  # one line for the card
    after_load: Callable[[Any], None] = lambda model: None  # after load_weights in training


def _mnv2_build(args: argparse.Namespace, pretrained: bool):
    from training.e2e.model import build_model

    return build_model(args.weights if pretrained else None, internal_size=args.internal_size,
                       width=args.width, mask_head=bool(args.mask_weight))


def _clip_build(tune: str) -> Callable[[argparse.Namespace, bool], Any]:
    def build(args: argparse.Namespace, pretrained: bool):
        from training.e2e.clip_tuned import build_tuned_model

        return build_tuned_model(tune, rank=args.lora_rank, load_weights=pretrained)
    return build


# Imported on first call, so that choosing a network loads Keras only when a run needs it.
def _mnv2(name: str) -> Callable:
    def call(*a):
        from training.e2e import model

        return getattr(model, name)(*a)
    return call


def _clip(name: str) -> Callable:
    def call(*a):
        from training.e2e import clip_tuned

        return getattr(clip_tuned, name)(*a)
    return call


ARCHS = {
    "mobilenetv2": Arch(
        "dfd-mobilenetv2", _mnv2_build, _mnv2("set_trunk_trainable"),
        _mnv2("batchnorm_stats"), _mnv2("serving_model"),
        "the trunk's BatchNorm moving statistics (ImageNet's)",
        "MobileNetV2 from ImageNet weights, every layer trained (BatchNorm frozen)"),
    "clip-lora": Arch(
        "dfd-clip-lora", _clip_build("lora"), _clip("set_phase"),
        _clip("frozen_weights"), _clip("serving_model"),
        "every CLIP weight but the adapters and the projection matrices (Keras saves each "
        "with its adapter merged in)",
        "CLIP ViT-B/16 cut after block 6, a low-rank adapter (LoRA) on every projection of "
        "blocks 1-6 trained with a head on the class token; merged into the weights to serve",
        _clip("after_load")),
    "clip-ln": Arch(
        "dfd-clip-ln", _clip_build("ln"), _clip("set_phase"),
        _clip("frozen_weights"), _clip("serving_model"),
        "every CLIP weight but the LayerNorms of blocks 1-6",
        "CLIP ViT-B/16 cut after block 6, the LayerNorms of blocks 1-6 trained with a head on "
        "the class token"),
}


def arch_of(args: argparse.Namespace) -> Arch:
    """The row of --arch (checked by argparse's choices)."""
    return ARCHS[args.arch]
