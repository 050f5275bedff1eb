"""Continued pretraining: masked-LM training of an encoder on unlabelled text (``nlp-transfer adapt``).

- :mod:`~nlp_transfer.adapt.texts` reads the unlabelled texts (lines of .txt files, a column of csv/tsv/json/jsonl,
  the sentences of CoNLL files) and holds out a seeded share of them;
- :mod:`~nlp_transfer.adapt.masking` finds whole words and masks them, the same way for a row and epoch every time;
- :mod:`~nlp_transfer.adapt.model` builds the masked-LM model on the encoder (decoder tied to the embeddings) and
  saves it so that ``AutoModel`` loads the adapted encoder;
- :mod:`~nlp_transfer.adapt.task` is the loop's task (batches, loss, held-out metrics);
- :mod:`~nlp_transfer.adapt.run` composes them around ``training.loop.fit``; :mod:`~nlp_transfer.adapt.command`
  is the command line. Nothing heavy is imported here, so the command answers bad input before torch loads.
"""
