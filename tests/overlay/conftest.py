"""Fixtures for the overlay tests: a namespace lab and a controller+agents harness on it."""

from __future__ import annotations

import pytest
from overlay_harness import Overlay

from overlay.testing import NamespaceLab


@pytest.fixture
def lab():
    """A fresh NamespaceLab; every namespace it made is deleted afterwards, even on failure."""
    with NamespaceLab() as the_lab:
        yield the_lab


@pytest.fixture
def three_sites(lab):
    """An Overlay with sites a, b and c realized into their own namespaces."""
    ov = Overlay(lab)
    try:
        for name in ("a", "b", "c"):
            ov.add_site(name)
        yield ov
    finally:
        ov.close()
