"""Networks shipped with graphnet, as spec builders: ``graphnet.zoo.resnet9`` (Page's ResNet-9).

Each submodule defines ``build(**options) -> spec`` and ``net = build()``; load one with
``graphnet.load_spec('graphnet.zoo.resnet9:build')``. Submodules are imported only when used.
"""
