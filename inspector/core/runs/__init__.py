"""Prepared runs on disk: the bursts and lesson demos `causallm-inspect prepare` ran once
(`inspector.core.recording`, above the Lab), stored here for the Lab to replay (below it)."""
