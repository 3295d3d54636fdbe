"""Learning the ranker and the "not found" line from public question sets, and measuring them.

``python -m index train`` and ``python -m index quality`` run this package:

    datasets.py   which questions, on which corpus, in which fold (split by article)
    corpora.py    the indexes they are asked against (vectors shared between them)
    collect.py    each question's feature rows and which candidates hold its answer
    fit.py        fitting the LambdaRank ranker and the logistic "not found" model
    baselines.py  BM25, dense and their fusion, for comparison in the same run
    report.py     held-out figures, side by side

Nothing here runs when the bot answers; it needs the shared evaluation data
(``../shared/eval``), and LightGBM and scikit-learn to fit.
"""
