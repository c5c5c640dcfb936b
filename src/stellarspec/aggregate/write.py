"""Writing the tables: csv with a fixed float format, markdown and LaTeX."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import write_csv, write_text
from .render import (ceiling_note, markdown_to_latex, snr_markdown, table3_markdown,
                     table4_markdown, table5_markdown)


def write_table_csv(path, frame: pd.DataFrame) -> None:
    """Fixed float format, so reruns give byte-identical tables."""
    write_csv(path, frame, float_format="%.6f")


def write_tables(tables: dict, paths: dict, n_bootstrap: int = 1000,
                 ceilings: dict | None = None) -> None:
    """Each table as csv, md and tex; paths keys are '<table>_csv', '<table>_md', '<table>_tex'.
    `ceilings` ({type: accuracy}, label_first's Teff-only ceiling) is printed with Tables 3
    and 4 and is a column of Table 4's csv."""
    fraction = float(tables["table4"]["train_fraction"].iloc[0])
    if ceilings:
        table4 = tables["table4"]
        tables = {**tables, "table4": table4.assign(teff_only_ceiling=table4["type"].map(
            {**ceilings, "average": float(np.mean(list(ceilings.values())))}))}
    ceiling = "\n".join(ceiling_note(ceilings))[1:] + "\n" if ceilings else ""
    render = {"table3": lambda t: table3_markdown(t, n_bootstrap) + ceiling,
              "table4": lambda t: table4_markdown(t, n_bootstrap, ceilings),
              "snr": lambda t: snr_markdown(t, fraction, n_bootstrap),
              "table5": lambda t: table5_markdown(t, fraction, n_bootstrap)}
    for name, frame in tables.items():
        write_table_csv(paths[f"{name}_csv"], frame)
        md = render[name](frame)
        write_text(paths[f"{name}_md"], md)
        write_text(paths[f"{name}_tex"], markdown_to_latex(md))
