"""Prepared runs: bursts and lesson demos run once by `causallm-inspect prepare`, stored, and replayed."""
