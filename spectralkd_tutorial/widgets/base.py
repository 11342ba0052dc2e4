"""The pattern every explorer follows: a plain ``update(**values)`` that redraws one figure, and
an ``ipywidgets.interactive`` built from named controls that calls it. Tests drive ``update`` (or the
controls' ``.value``) headlessly and assert on the figure's data."""

from __future__ import annotations

from typing import Any


class FigureExplorer:
    """Base class: subclasses set ``self.fig`` and implement ``update`` and ``_controls``."""

    control_names: tuple[str, ...] = ()
    control_width: str = "420px"
    _widget: Any = None

    def update(self, **values: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _controls(self, widgets: Any, style: dict[str, str], layout: Any) -> dict[str, Any]:  # pragma: no cover
        """The named ipywidgets controls, in ``control_names`` order."""
        raise NotImplementedError

    @property
    def sliders(self) -> dict[str, Any]:
        """The controls by name (built with :attr:`widget`)."""
        return dict(zip(self.control_names, self.widget.children[: len(self.control_names)]))

    @property
    def widget(self):
        """An ``ipywidgets.interactive``: the controls, then the figure redrawn on every change."""
        if self._widget is None:
            import ipywidgets as widgets
            from IPython.display import display

            style = {"description_width": "initial"}
            layout = widgets.Layout(width=self.control_width)
            controls = self._controls(widgets, style, layout)

            def redraw(**values: Any) -> None:
                self.update(**values)
                display(self.fig)

            self._widget = widgets.interactive(redraw, **controls)
        return self._widget
