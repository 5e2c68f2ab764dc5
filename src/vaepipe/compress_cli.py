"""`vaepipe.compress_cli`, the commands' module before it moved to `vaepipe.codecs.cli`: kept so that console
scripts installed before the move (`vaepipe-compress`, `vaepipe-decompress`) still run."""

from vaepipe.codecs.cli import compress_entry_point, decompress_entry_point  # noqa: F401
