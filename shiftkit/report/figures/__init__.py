"""The report's figures: one function per figure, each drawing from tidy pandas frames.

All use :mod:`.style` (Agg backend, seaborn's colour-blind palette, 150 dpi, labelled axes with units).
"""
