"""One module per notebook: the section's computation (``run``), its parameter check
(``check``), its figure panels and the words of its Result paragraph. The notebooks only call
them, in the paper's order:

    primer              notebooks/primer.py           background: eNTK -> infinite NTK, lazy training
    data_scaling        notebooks/01_data_scaling     Sec. 3, Fig. 1A
    width               notebooks/02_width            Sec. 3, Fig. 2
    hyperparameters     notebooks/03_hyperparameters  Sec. 3, Fig. 3
    after_kernel        notebooks/04_after_kernel     Sec. 4, Fig. 1B, 4
    kernel_dynamics     notebooks/05_kernel_dynamics  Sec. 5, Fig. 1C, 5
    summary             notebooks/00_summary          Fig. 1 and every verdict of a grid
"""
import importlib

from ntk_utils.parameters_cell import SECTIONS as NOTEBOOKS, WITHOUT_SETUP, uses_setup  # noqa: F401


def module(notebook):
    """The section module of a notebook stem, e.g. module("01_data_scaling") -> sections.data_scaling."""
    if notebook not in NOTEBOOKS:
        raise KeyError(f"no section module for notebook {notebook!r}; notebooks: {sorted(NOTEBOOKS)}")
    return importlib.import_module(f"ntk_utils.sections.{NOTEBOOKS[notebook]}")
