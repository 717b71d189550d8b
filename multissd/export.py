"""``python -m multissd.export``: a trained TinySSD as an ONNX file, through a framework's own exporter.

    python -m multissd.export --weights runs/fruit/weights.safetensors --backend torch --out fruit.onnx
    python -m multissd.export --weights runs/fruit/weights.safetensors --backend paddle --image-size 320

``--backend torch`` exports with ``torch.onnx.export`` (the ``torch.export``-based exporter),
``--backend paddle`` with ``paddle.onnx.export`` (paddle2onnx); either reads any multissd weights
file, whichever framework trained it. The file holds the model's raw heads, as its forward returns
them: input ``images`` float32 ``(batch, 3, H, W)`` (pixels 0-255, a dynamic batch), outputs
``anchors`` ``(1, A, 4)``, ``cls_preds`` ``(batch, A, C + 1)`` (logits; a softmax or a sigmoid head,
as trained) and ``bbox_preds`` ``(batch, 4A)``, at the run's image size (``--image-size`` for
another). The model's config (spec, classes, image size, head, box coding, the run's config.json)
travels in the ONNX metadata, so ``python -m multissd.predict photo.jpg --weights fruit.onnx``
(the ``onnxruntime`` engine) decodes it exactly as the framework that trained it.
"""
from __future__ import annotations

from multissd import cli, registry
from multissd.onnx_export import DEFAULT_OPSET, compare_with_numpy, export_onnx

__all__ = ["main", "parser", "script", "export_onnx", "compare_with_numpy"]  # the library, re-exported

def parser():
    p = cli.new_parser("python -m multissd.export", __doc__)
    p.add_argument("--weights", required=True, help="a weights file written by multissd (runs/NAME/weights.safetensors)")
    p.add_argument("--backend", choices=[n for n in registry.BACKEND_NAMES if n != "numpy"], default="torch",
                   help="whose exporter writes the graph: torch (torch.onnx.export, default) or paddle "
                        "(paddle.onnx.export / paddle2onnx); either reads weights any backend trained")
    p.add_argument("--out", default=None, help="the ONNX file (default: the weights file with the suffix .onnx)")
    p.add_argument("--image-size", type=int, nargs="+", default=None, metavar="PIXELS",
                   help="input size of the exported graph: one number (square) or HEIGHT WIDTH (default: the run's)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--check", action="store_true",
                   help="run the exported file with ONNX Runtime on random images (batch 1 and 8) and print its "
                        "largest difference from the numpy backend's forward, relative to each output's magnitude")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def body() -> int:
        out = export_onnx(args.weights, args.out, args.backend, args.image_size, args.opset)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB), exported with {args.backend}")
        if args.check:
            worst = compare_with_numpy(out, args.weights)
            print("ONNX Runtime vs the numpy forward, batch 1 and 8, largest |difference| / largest |value|: "
                  + ", ".join(f"{name} {value:.1e}" for name, value in worst.items()))
        return 0
    return cli.report_errors(body, {"image_size": "--image-size", "opset": "--opset"})


script = cli.script(main)


if __name__ == "__main__":
    script()
