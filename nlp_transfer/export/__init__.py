"""``nlp-transfer export``: a run as an ONNX model (float32, optionally int8), checked against the run itself.

- ``onnx_export.py`` writes the graph with torch's own exporter and quantizes it with onnxruntime;
- ``validation.py`` scores the run's validation split with both models and compares them;
- ``onnx_backend.py`` runs an export with onnxruntime behind the interface ``nlp_transfer.inference`` uses;
- ``command.py`` ties them together: export to a temporary folder, check, then move in place;
- ``hub_files.py`` adds an export to ``push`` with a card section on running it with onnxruntime alone.

Nothing here is imported by ``import nlp_transfer``: onnx and onnxruntime are the optional ``export`` extra.
"""
