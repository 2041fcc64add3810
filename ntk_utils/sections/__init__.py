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

NOTEBOOKS = {"primer": "primer", "01_data_scaling": "data_scaling", "02_width": "width",
             "03_hyperparameters": "hyperparameters", "04_after_kernel": "after_kernel",
             "05_kernel_dynamics": "kernel_dynamics", "00_summary": "summary"}

# Sections run on a shared ntk_utils.setup.Setup; the primer and the summary have their own parameters.
WITHOUT_SETUP = ("primer", "summary")


def module(notebook):
    """The section module of a notebook stem, e.g. module("01_data_scaling") -> sections.data_scaling."""
    if notebook not in NOTEBOOKS:
        raise KeyError(f"no section module for notebook {notebook!r}; notebooks: {sorted(NOTEBOOKS)}")
    return importlib.import_module(f"ntk_utils.sections.{NOTEBOOKS[notebook]}")


def uses_setup(notebook):
    """Whether the notebook's parameters include the shared Setup (the section notebooks)."""
    return notebook in NOTEBOOKS and NOTEBOOKS[notebook] not in WITHOUT_SETUP
