"""The widget playground: a demo page for the identity models and, in demo mode, a demo backend."""
