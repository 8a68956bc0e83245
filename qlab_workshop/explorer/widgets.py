"""The explorer's widget half: ipywidgets controls wired to `Explorer.compute`; computes nothing.

Every control has an observer; a change recomputes the result and replaces the text line (the
accuracy, the float accuracy, the rounding and clipping error, the time taken) and the bucket
histogram (a PNG in an Image widget). Each widget carries a CSS class, `qlab-explorer-<name>`, so a
browser test can find it.
"""

from __future__ import annotations

import html
import time

import ipywidgets as w
from IPython.display import display

from qlab_workshop.explorer import figures
from qlab_workshop.explorer.compute import QUANTIZE, Explorer, Result, Settings

CALIBRATION_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
"""The calibration sizes offered (those the training split can give), then the whole split."""


def calibration_sizes(pool: int) -> list[int]:
    """Returns the calibration sizes (list of int, ascending) a training split of `pool` images
    offers: those of `CALIBRATION_SIZES` below `pool`, then `pool` itself."""
    return [n for n in CALIBRATION_SIZES if n < pool] + [pool]


class ExplorerUI:
    """The explorer's widgets for one `Explorer`; shown by Jupyter when a cell returns it.

    Attributes:
        explorer: the `Explorer` every change recomputes with.
        controls: {"layer", "bits", "symmetric", "per_channel", "clip", "calibration", "quantize":
            the ipywidget of that `Settings` field}; the layer dropdown lists `explorer.layers`.
        summary: an HTML widget: the settings in one line, `Result.summary()` in the next, then the
            time the figure took (or the reason nothing could be computed).
        image: an Image widget: `qlab_workshop.explorer.figures.histogram` as PNG.
        result: the last `Result` (None if the last settings were refused).
        box: the VBox holding them all.

    Raises:
        ValueError: a `settings` the explorer refuses (see `Explorer.check`).
    """

    def __init__(self, explorer: Explorer, settings: Settings | None = None):
        self.explorer = explorer
        settings = explorer.check(settings or Settings(layer=explorer.layers[0]))
        sizes = calibration_sizes(len(explorer.dataset.x_train))
        style = {"description_width": "80px"}
        self.controls = {
            "layer": w.Dropdown(
                options=explorer.layers, value=settings.layer, description="layer", style=style
            ),
            "bits": w.IntSlider(
                value=min(max(settings.bits, 2), 8),
                min=2,
                max=8,
                description="bits",
                continuous_update=False,
                style=style,
            ),
            "symmetric": w.ToggleButtons(
                options=[("asymmetric", False), ("symmetric", True)],
                value=settings.symmetric,
                description="grid",
                style=style,
            ),
            "per_channel": w.ToggleButtons(
                options=[("per-channel", True), ("per-tensor", False)],
                value=settings.per_channel,
                description="weights",
                style=style,
            ),
            "clip": w.FloatSlider(
                value=settings.clip,
                min=0.05,
                max=1.0,
                step=0.05,
                readout_format=".2f",
                description="clip",
                continuous_update=False,
                style=style,
            ),
            "calibration": w.SelectionSlider(
                options=sizes,
                value=min(sizes, key=lambda n: abs(n - settings.calibration)),
                description="calibration",
                continuous_update=False,
                style=style,
            ),
            "quantize": w.ToggleButtons(
                options=list(QUANTIZE), value=settings.quantize, description="quantize", style=style
            ),
        }
        self.summary = w.HTML()
        self.image = w.Image(format="png")
        for name, control in self.controls.items():
            control.add_class(f"qlab-explorer-{name.replace('_', '-')}")
            control.observe(self.update, names="value")
        self.summary.add_class("qlab-explorer-summary")
        self.image.add_class("qlab-explorer-histogram")
        c = self.controls
        self.box = w.VBox(
            [
                w.HBox([c["layer"], c["quantize"]]),
                w.HBox([c["bits"], c["symmetric"]]),
                w.HBox([c["clip"], c["per_channel"]]),
                c["calibration"],
                self.summary,
                self.image,
            ]
        )
        self.box.add_class("qlab-explorer")
        self.result: Result | None = None
        self.update()

    def settings(self) -> Settings:
        """Returns the `Settings` the controls show now.

        Raises:
            ValueError: as `Settings` (controls cannot cause it, a program setting them can).
        """
        values = {name: control.value for name, control in self.controls.items()}
        return Settings(**values)

    def update(self, change=None) -> Result | None:
        """Recompute with the controls' settings and show the result (an observer: never raises).

        Returns:
            the new `Result`, or None if the settings were refused or the computation failed (the
            summary then says why).
        """
        try:
            result = self.explorer.compute(self.settings())
            start = time.perf_counter()
            png = figures.png(figures.histogram(result))
            drawn = time.perf_counter() - start
        except (
            Exception
        ) as error:  # an observer that raised would leave the old result on show, silently
            self.result = None
            self.summary.value = (
                f"<b>nothing computed:</b> {type(error).__name__}: {html.escape(str(error))}"
            )
            return None
        self.result = result
        self.image.value = png
        self.summary.value = (
            f"<div>{html.escape(result.settings.describe())}</div>"
            f"<div><b>{html.escape(result.summary())}</b></div>"
            f"<div>histogram drawn in {drawn:.2f} s</div>"
        )
        return result

    def _ipython_display_(self):
        display(self.box)


def show(explorer: Explorer, settings: Settings | None = None) -> ExplorerUI:
    """The explorer's widgets for `explorer`, computed once for `settings` (default: its first layer
    at 8 bits); a notebook cell that returns it shows them.

    Returns:
        an `ExplorerUI`.

    Raises:
        ValueError: a `settings` the explorer refuses.
    """
    return ExplorerUI(explorer, settings)
