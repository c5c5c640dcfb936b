"""Training deep models, below stellarspec.fit: seeds (every seed a run derives), networks
(the model factory and Adam), stacking (M candidates trained as one, plain torch),
pretraining_data (the pretraining DataModule and its leakage guard), lightning_modules (thin
Lightning wrappers), trainer (the Trainer of one job) and checkpoints (what a resume needs).

Imports nothing, so that `seeds` loads without torch.
"""
