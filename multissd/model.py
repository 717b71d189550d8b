"""The backend-neutral half of TinySSD (einops' pattern): the forward pass over scales, written once.

Each backend's ``TinySSD`` is ``class TinySSD(TinySSDMixin, <framework base class>)``: the
framework supplies layers and tensors through the backend's ``_nn`` module, this mixin supplies
the structure from a :class:`~multissd.model_spec.TinySSDSpec`.
"""
from __future__ import annotations

from multissd.model_spec import TinySSDSpec, init_weights


def resolve_spec(num_classes=1, spec=None) -> TinySSDSpec:
    """The spec to build: ``spec`` if given, else the book's TinySSD with ``num_classes``."""
    if spec is None:
        return TinySSDSpec(num_classes=num_classes)
    if not isinstance(spec, TinySSDSpec):
        raise TypeError(f"Expected spec to be a multissd.TinySSDSpec; received {type(spec).__name__}")
    return spec


class TinySSDMixin:
    """Structure and forward pass of TinySSD; ``_nn`` is the backend's ``<name>_nn`` module."""

    _nn = None

    def _build(self, spec: TinySSDSpec, seed: int) -> None:
        nn = self._nn
        self.spec = spec
        self.num_classes = spec.num_classes
        for i in range(spec.num_scales):
            channels, anchors = spec.scale_channels(i), spec.num_anchors(i)
            setattr(self, f"blk_{i}", nn.get_blk(i, spec))
            setattr(self, f"cls_{i}", nn.cls_predictor(channels, anchors, spec.num_classes))
            setattr(self, f"bbox_{i}", nn.bbox_predictor(channels, anchors))
        nn.set_weights(self, init_weights(spec, seed))

    def forward(self, X):
        """``X`` ``(B, in_channels, H, W)`` -> ``(anchors (1, A, 4), cls_preds (B, A, C), bbox_preds (B, 4A))``."""
        nn, spec = self._nn, self.spec
        n = spec.num_scales
        anchors, cls_preds, bbox_preds = [None] * n, [None] * n, [None] * n
        for i in range(n):
            X, anchors[i], cls_preds[i], bbox_preds[i] = nn.blk_forward(
                X, getattr(self, f"blk_{i}"), spec.sizes[i], spec.ratios[i],
                getattr(self, f"cls_{i}"), getattr(self, f"bbox_{i}"))
        anchors = nn.concat(anchors, axis=1)                                      # (1, A, 4)
        cls_preds = nn.concat_preds(cls_preds)                                    # (B, A * C)
        cls_preds = nn.reshape(cls_preds, (cls_preds.shape[0], -1, self.num_classes + 1))  # (B, A, C)
        bbox_preds = nn.concat_preds(bbox_preds)                                  # (B, 4A)
        return anchors, cls_preds, bbox_preds
