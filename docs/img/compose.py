"""The README's picture: one table of `python -m mocobench tables` (its Markdown, as printed) above its bar plot.

    python docs/img/compose.py --tables DIR/tables.md --plot DIR/NAME_bars.png --out docs/img/tables-demo.png

Only lays out what the tables command wrote; nothing is computed here.
"""
from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.image import imread


def first_table(markdown: str) -> list[str]:
    """The first '## title' of tables.md with its table lines and notes, up to the next title."""
    lines, out = markdown.splitlines(), []
    for line in lines:
        if line.startswith("## ") and out:
            break
        if line.startswith("## ") or out:
            out.append(line)
    lines = [line for line in out if line.strip()]
    return [w for line in lines for w in textwrap.wrap(line, 128, subsequent_indent="  ")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", type=Path, required=True)
    p.add_argument("--plot", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    text = first_table(args.tables.read_text())
    image = imread(args.plot)
    width = max(8.0, image.shape[1] / 120)
    text_h, plot_h = 0.125 * len(text) + 0.15, width * image.shape[0] / image.shape[1]
    fig = Figure(figsize=(width, text_h + plot_h))
    top = fig.add_axes((0, plot_h / (text_h + plot_h), 1, text_h / (text_h + plot_h)))
    top.axis("off")
    top.text(0.01, 0.98, "\n".join(text), family="monospace", fontsize=7, va="top", ha="left", wrap=False)
    bottom = fig.add_axes((0, 0, 1, plot_h / (text_h + plot_h)))
    bottom.imshow(image)
    bottom.axis("off")
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
