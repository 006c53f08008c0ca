"""DNN acoustic models for the hybrid DNN-HMM recognizer (Zeiler et al. 2013) and their training.

Modules (import them directly; this package imports nothing heavy):

- :mod:`asr.nnet.mlp`: the ReLU MLP on spliced context windows, with input normalization buffers.
- :mod:`asr.nnet.schedule`: the learning-rate schedule ``eta_t = eta / max(1, t / T)``.
- :mod:`asr.nnet.optimizer`: SGD (momentum, weight decay) and Adagrad from the ``optim`` config.
- :mod:`asr.nnet.priors`: senone (pdf) counts from alignments and floored log priors.
- :mod:`asr.nnet.alignments`: reading the senone targets of a GMM model dir's ``ali.h5``.
- :mod:`asr.nnet.frame_data`: features joined with targets, frame-level shuffled minibatches (in RAM or a
  chunked shuffle buffer read from disk), held-out sets.
- :mod:`asr.nnet.checkpoint`: atomic training checkpoints (``weights_only`` loadable) and resume.
- :mod:`asr.nnet.trainer`: the training loop (checkpoints, held-out evaluation, logs, TensorBoard).
- :mod:`asr.nnet.launcher`: a torchrun rank dies with its launcher (no orphan ranks after ``kill -9``).
- :mod:`asr.nnet.distributed`: ``trainer=ddp``, synchronous data-parallel training under torchrun (DDP).
- :mod:`asr.nnet.param_server`: Downpour parameter-server shards (parameter split, SGD/Adagrad updates).
- :mod:`asr.nnet.downpour`: ``trainer=async``, asynchronous Downpour SGD with Ray actors (replicas, shards).
- :mod:`asr.nnet.config`: typed, validated training configuration built from the Hydra config.
- :mod:`asr.nnet.model`: :class:`~asr.nnet.model.DnnAcousticModel`, the decoding side of a DNN model dir.
"""
