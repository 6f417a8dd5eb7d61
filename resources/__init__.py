"""Resources shipped with protoview (icons, styles, the demo checkpoints).

Installed as the package ``protoview.resources``; read with ``importlib.resources``.
"""
