# SPDX-License-Identifier: MIT
"""Headings and labels of the training log in English and in the user's German, by language."""

from __future__ import annotations

from dinowm.export.labels.de import DE
from dinowm.export.labels.en import EN

LABELS = {"en": EN, "de": DE}
