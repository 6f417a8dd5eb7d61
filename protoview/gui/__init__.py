"""The desktop window (PySide6 + pyqtgraph), thin over protoview.core."""
