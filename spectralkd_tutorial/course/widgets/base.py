"""The pattern every explorer follows: a plain ``update(**values)`` that redraws one figure, and
an ``ipywidgets.interactive`` built from named controls that calls it. Tests drive ``update`` (or the
controls' ``.value``) headlessly and assert on the figure's data."""

from __future__ import annotations

from typing import Any, Callable


class FigureExplorer:
    """Base class: subclasses set ``self.fig`` and implement ``update``, ``_check`` and ``_controls``
    (and may widen the controls with ``control_width``)."""

    control_width: str = "420px"
    _widget: Any = None
    _control_names: tuple[str, ...] = ()  # the keys of ``_controls``, once the widget is built

    def update(self, **values: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check(self) -> None:  # pragma: no cover - abstract
        """Raise ValueError if the current state is invalid."""
        raise NotImplementedError

    def _assign(self, fields: dict[str, tuple[str, Callable[[Any], Any]]], values: dict[str, Any]) -> None:
        """Set the given (non-None) values, ``fields[name] = (attribute, converter)``; validate with
        ``_check``; on a ValueError restore the previous state and re-raise."""
        previous = {attribute: getattr(self, attribute) for attribute, _ in fields.values()}
        for name, value in values.items():
            if value is not None:
                attribute, convert = fields[name]
                setattr(self, attribute, convert(value))
        try:
            self._check()
        except ValueError:
            for attribute, value in previous.items():
                setattr(self, attribute, value)
            raise

    def _controls(self, widgets: Any, style: dict[str, str], layout: Any) -> dict[str, Any]:  # pragma: no cover
        """The named ipywidgets controls (``update``'s keyword arguments), in display order."""
        raise NotImplementedError

    @property
    def sliders(self) -> dict[str, Any]:
        """The controls by name (built with :attr:`widget`)."""
        controls = self.widget.children  # builds the widget, and so the names, on first use
        return dict(zip(self._control_names, controls))

    @property
    def widget(self):
        """An ``ipywidgets.interactive``: the controls, then the figure redrawn on every change."""
        if self._widget is None:
            import ipywidgets as widgets
            from IPython.display import display

            style = {"description_width": "initial"}
            layout = widgets.Layout(width=self.control_width)
            controls = self._controls(widgets, style, layout)
            self._control_names = tuple(controls)

            def redraw(**values: Any) -> None:
                self.update(**values)
                display(self.fig)

            self._widget = widgets.interactive(redraw, **controls)
        return self._widget


def layer_and_bin_sliders(
    widgets: Any, style: dict[str, str], layout: Any, *, layer: int, layers: tuple[int, int], k: int, max_k: int
) -> dict[str, Any]:
    """The two controls every spectrum explorer starts with: ``layer`` in ``layers`` (first, last; 0 =
    embeddings) and the frequency bin ``k`` in ``[0, max_k]``."""
    return dict(
        layer=widgets.IntSlider(value=layer, min=layers[0], max=layers[1],
                                description="layer (0 = embeddings)", style=style, layout=layout),
        k=widgets.IntSlider(value=k, min=0, max=max_k, description="frequency bin k", style=style, layout=layout),
    )
