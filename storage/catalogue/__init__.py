"""OAIS Data Management: the catalogue database and what it keeps."""
