"""How every report writes a duration."""

from __future__ import annotations


def milliseconds(seconds: float) -> str:
    """Whole milliseconds, but a tenth near a budget: '20.4 ms (budget 20 ms)'."""
    value = seconds * 1000
    return f"{value:.0f} ms" if value >= 100 or value == round(value) else f"{value:.1f} ms"
