"""The label strategies (copy, mask, trl) as per-token rows, and the bridge to TRL that the trl strategy asks."""
