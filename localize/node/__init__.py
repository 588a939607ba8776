"""A DICOM node: studies arrive from the PACS, results go to the planning system and the PACS.

``config`` (the YAML file), ``store`` (received instances on disk), ``queue``
(SQLite state), ``scp`` (listening AE), ``runner`` (pipeline runs), ``report_capture``
(the report page as a Secondary Capture image), ``scu``
(sending results), ``service`` (``localize node``), ``status``
(``localize node status``). See docs/node.md.
"""
