"""SRAM macros priced by CACTI 7: the generator of the table (``generate.py``) and its CACTI template
(``configs/sram.cfg``)."""
