"""The app's screens: the main lesson screen and the help dialog."""
