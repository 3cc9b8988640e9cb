"""Pictures of what an encoder learned (``scarce visualize``, ``scarce report``).

Each picture is a function returning arrays (tested) and a matplotlib figure built from them:
:mod:`~scarce.viz.pca` (PCA token maps, as the SCOTT paper's figure), :mod:`~scarce.viz.attention`
(attention maps), :mod:`~scarce.viz.masks` (masks and views as the method sees them),
:mod:`~scarce.viz.neighbours` (nearest neighbours), :mod:`~scarce.viz.embedding` (a 2-D map).
"""
