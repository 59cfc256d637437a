"""Imitation: demonstration datasets (Minari), scripted experts and task-conditioned behaviour cloning.

- ``dataset``: where datasets live, writing episodes as a Minari dataset, reading them back.
- ``experts``: scripted controllers, one module per env family (``point``, ``fetch``).
- ``collect``: a demonstrator (expert or trained run) acting in mtgc's env; ``mtgc collect``.
- ``batches``: minibatches from demonstrations: stratified or uniform over tasks, goal relabeling.
- ``bc``: behaviour cloning as an algorithm (``algo.name: bc``) that ``mtgc train`` runs like any other.
"""
