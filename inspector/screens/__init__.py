"""The app's screens: the main lesson screen and its dialogs (help, code, glossary)."""
