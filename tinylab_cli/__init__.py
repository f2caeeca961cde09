"""The `tinylab` command line: the top layer, above the engine, the lab (`hil`) and the search
(`nas`). It holds the table of sub-commands and the commands that need `nas` (`lut`)."""
