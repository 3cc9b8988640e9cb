"""Parameters and forward FLOPs per image of the distillation student presets against their teacher.

    python -m benchmarks.student_cost

Writes ``results/student_cost.{json,md}``: encoder parameters and forward FLOPs per 96 px image
(``scarce.flops``) of ``scott-cpu-96`` (the teacher's architecture) and ``scott-small-96`` (the
student preset), and their ratio. Counted, not timed: the figures do not depend on the machine.
"""

from __future__ import annotations

from benchmarks.common import run_header, write_results
from scarce.flops import forward_flops_per_image
from scarce.models import create_encoder

TEACHER = "scott-cpu-96"
STUDENTS = ("scott-small-96",)


def main() -> None:
    rows = {}
    for name in (TEACHER, *STUDENTS):
        encoder = create_encoder(name)
        rows[name] = {
            "parameters": sum(p.numel() for p in encoder.parameters()),
            "forward_flops_per_image": forward_flops_per_image(encoder, encoder.config.img_size),
        }
    lines = ["| encoder | parameters | forward GFLOPs / image | FLOPs vs teacher |", "|---|---:|---:|---:|"]
    for name, row in rows.items():
        ratio = row["forward_flops_per_image"] / rows[TEACHER]["forward_flops_per_image"]
        row["flops_ratio"] = ratio
        lines.append(
            f"| {name} | {row['parameters'] / 1e6:.2f} M | {row['forward_flops_per_image'] / 1e9:.3f} | {ratio:.2f}x |"
        )
    write_results("student_cost", {**run_header(), "teacher": TEACHER, "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
