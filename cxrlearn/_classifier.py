"""The study's pneumonia CNN as a scikit-learn classifier."""

import copy
import numbers
import os

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._decoders import _normalize_intensity
from ._training import is_lazy as _is_lazy
from .utils._fingerprints import (
    NEAR_DUPLICATE_BITS,
    _nearest_hash_distance,
    image_fingerprints,
    perceptual_hashes,
)
from .utils._threads import limit_tf_threads_to_worker_share
from .networks import PRECISIONS

__all__ = ["PneumoniaCNN"]


class PneumoniaCNN(ClassifierMixin, BaseEstimator):
    """Convolutional pneumonia classifier for chest X-ray images.

    A scikit-learn classifier around a Keras convolutional network. The
    defaults are the final model of the study this library grew from: five
    convolution blocks of 32-64-64-128-128 filters with max-pooling (the
    last three with stride 2), a 256-unit dense layer followed by dropout,
    and a sigmoid output -- 311,041 parameters at 300x300x3, the study's
    "about 311k" (the study also names a second dense layer:
    ``dense_units=(256, 8)``; it was worse on real data, see
    :func:`cxrlearn.networks.build_pneumonia_cnn`). The network is built in
    :meth:`fit` from the shape of the images, so any image size above the
    minimum of the convolution stack and 1 or 3 channels work. Its first
    layer maps the [0, 1] pixels to [-1, 1] (no parameters), which makes the
    study's network learn from the first epoch. Against the study's first
    lesson, class imbalance, every training batch holds the classes equally
    often (``balanced_batches=True``); ``balanced_batches=False`` weights the
    loss instead, as the study did.

    Parameters
    ----------
    activation : str, default="relu"
        Keras activation of the convolution and dense layers (the study
        compared ``"relu"`` and ``"swish"``).
    dropout : float, default=0.5
        Dropout rate after each hidden dense layer; ``0`` turns it off.
    dense_units : tuple of int, default=(256,)
        Units of each hidden dense layer, each followed by dropout.
    conv_filters : tuple of int, default=(32, 64, 64, 128, 128)
        Filters of each convolution block (stride 1 for the first two
        blocks, 2 afterwards; each followed by 2x2 max-pooling). ``()``
        gives a dense network that also accepts 2-D tabular input.
    batch_norm : bool, default=False
        Batch normalisation after each convolution.
    resize : int, tuple of (int, int) or None, default=None
        Shrink the images to ``(height, width)`` (one int: a square) inside
        the network, before anything else, with an antialiased bilinear
        :class:`keras.layers.Resizing` layer: the network is then built
        for, and computes at, that size while it takes the images as the
        pipeline loads them -- how a 28 px network joins 176 px ones in one
        model (``companion``). ``None`` uses the images as they come. On
        arrays (without ``mixup_alpha``), :meth:`fit` shrinks the training
        images once and trains the network from there on, rather than
        shrinking them again at every step: the same weights, bit for bit,
        in a fifth less CPU time for the 28 px companion.
    equalize : bool, default=False
        Equalise each image's histogram inside the network, before
        ``resize`` -- exactly what ``ImageLoader(intensity="equalize")``
        does, but for this network only: the default recipe's 176 px network
        sees equalised films while its ``companion`` sees the films' own grey
        levels from the same loader (raw), which ranks patients better than
        both seeing equalised films (see the recipe in the documentation).
        :meth:`trained_on` then hashes the equalised images, as it would
        with an equalising loader.
    augmentation : None, str or dict, default=None
        Training-time augmentation by Keras preprocessing layers inside the
        network (inactive when predicting): ``None``, a preset of
        :data:`cxrlearn.networks.AUGMENTATION_PRESETS` (``"light"``,
        ``"standard"``) or a dict of factors.
    class_weight : None, "balanced" or dict, default="balanced"
        Weight of each class in the loss. A dict is keyed by class label as
        given in ``y`` (e.g. ``{"NORMAL": 1.2, "PNEUMONIA": 1.0}``); labels
        left out weigh 1. ``"balanced"`` weighs classes inversely to their
        frequency in the batches the network is trained on: with
        ``balanced_batches=True`` all classes are equally frequent there, so
        the weights are 1 (as after an imbalanced-learn resampler); with
        ``balanced_batches=False`` they are inverse to the frequencies in
        ``y``.
    balanced_batches : bool, default=True
        Balance the classes by sampling rather than by weighting: every
        epoch draws a new order in which each batch holds all classes
        equally often -- minority images repeated, a different subset of
        the majority each epoch -- with the usual number of steps per
        epoch. Works for arrays and for streamed
        :class:`cxrlearn.LazyImages`. A ``class_weight`` dict still
        multiplies the loss of each class. ``False`` shuffles the data as
        they are and leaves the balancing to ``class_weight`` (``False``
        with ``class_weight=None`` does not balance at all).
    label_smoothing : float, default=0.0
        Trains towards targets ``label_smoothing / 2`` and
        ``1 - label_smoothing / 2`` instead of 0 and 1 (Keras's binary
        cross-entropy ``label_smoothing``), which keeps the network's logits
        from growing without bound on images it already classifies. Two
        classes only: Keras's sparse categorical cross-entropy has no label
        smoothing, so a fit on three classes with a non-zero value raises a
        ``ValueError``.
    mixup_alpha : float or None, default=None
        Train on mixtures of pairs of images (mixup, Zhang et al. 2018):
        each image of a training batch is blended with another image of the
        same batch, ``lam * x_i + (1 - lam) * x_j``, and trained towards the
        same blend of their targets, ``lam`` drawn for every image from
        ``Beta(mixup_alpha, mixup_alpha)`` (0.2 mixes most images a little;
        1.0 uniformly). The drawing is reproducible from ``random_state``.
        ``None`` trains on the images as they are. Two classes only: Keras's
        sparse categorical cross-entropy takes no mixed targets, so a fit on
        three classes with a value raises a ``ValueError``.
    epochs : int, default=10
        Number of passes over the training data.
    n_networks : int, default=1
        Networks trained, one after the other, each from its own seeds
        (initial weights, dropout, augmentation and batch order; the first
        exactly the single network of the same ``random_state``), and
        combined into one by averaging their logits
        (:func:`cxrlearn.networks.average_networks`): a seed ensemble. Two
        networks ranked patients nobody tuned on better than one in
        patient-grouped cross-validation (``docs/recipe.rst``), for twice the
        training and prediction time. Grad-CAM explains the ensemble's
        logit. ``warm_start`` continues a single network only.
    companion : PneumoniaCNN or None, default=None
        A second recipe whose networks join this estimator's, typically
        small networks that shrink the same images themselves (``resize``):
        after this estimator's networks, :meth:`fit` trains a clone of it
        on the same images and labels (its ``random_state``, unless set,
        is this estimator's), and the model averages the two recipes'
        log-odds (:func:`cxrlearn.networks.add_companion`), so prediction,
        saving, serving and Grad-CAM see one network. In patient-grouped
        cross-validation one 176 px network with three 28 px networks
        (``resize=28``) ranked patients at least as well as two 176 px
        networks and misread fewer films, in two thirds of the training
        time on a CPU without bfloat16 (``docs/recipe.rst``, "Two scales in
        one model"). Grad-CAM weighs the maps of this estimator's own
        networks only, by the gradient of the averaged logit. A companion
        has no companion of its own, and ``warm_start`` does not continue a
        model with one.
    companion_weight : float, default=0.5
        The companion's share of the averaged log-odds, in (0, 1).
    batch_size : int, default=32
        Images per gradient step (and per prediction batch).
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Arithmetic of the convolution and hidden dense layers.
        ``"bfloat16"`` trains in mixed precision (float32 variables, loss
        and output layer; bfloat16 computation): on hardware that computes
        bfloat16 natively -- CPUs with AVX512-BF16 or AMX, GPUs of compute
        capability 8.0 or more -- it trains about twice as fast; elsewhere
        it is emulated and slower. ``"auto"`` uses bfloat16 only where it is
        native (:func:`cxrlearn.networks.resolve_precision`), so the same
        ``random_state`` can give slightly different networks on different
        machines; pass ``"float32"`` for the same arithmetic everywhere.
    learning_rate : float, default=1e-3
        Learning rate of the optimizer (when given by name).
    lr_schedule : {"constant", "cosine"}, default="cosine"
        ``"cosine"`` decays the learning rate along a cosine from
        ``learning_rate`` to 1% of it over the ``epochs`` of one fit
        (:class:`keras.optimizers.schedules.CosineDecay`); it cannot be
        combined with ``reduce_lr_on_plateau``. A warm-started fit keeps the
        optimizer, so it continues at the final, decayed rate.
    optimizer : str or keras.optimizers.Optimizer, default="adam"
        A Keras optimizer name or instance (an instance is copied from its
        configuration at each fit; its own learning rate is used).
    ema_momentum : float or None, default=None
        Keep an exponential moving average of the weights during training,
        ``average = ema_momentum * average + (1 - ema_momentum) * weights``
        after every step, and end the fit with the averaged weights (Keras's
        optimizer option ``use_ema``). ``0.99`` averages over about the last
        100 steps. ``None`` ends with the last step's weights. With an
        optimizer instance, set ``use_ema`` on the instance instead: passing
        both raises a ``ValueError``.
    weight_decay : float or None, default=None
        Decoupled weight decay (Keras's optimizer option ``weight_decay``):
        after every step each trainable weight ``w`` becomes
        ``w - weight_decay * lr * w``, with ``lr`` the step's learning rate,
        so over a cosine-scheduled fit the weights shrink by about
        ``exp(-weight_decay * learning_rate * steps / 2)`` besides the
        gradient's pull. ``None`` keeps the named optimizer's own default
        (none for ``"adam"``, 0.004 for ``"adamw"``). With an optimizer
        instance, set ``weight_decay`` on the instance instead: passing both
        raises a ``ValueError``.
    validation_fraction : float, default=0.0
        Fraction of the training data held out (stratified) to monitor
        ``val_loss``; 0 monitors the training loss.
    early_stopping : int or None, default=None
        Patience, in epochs, of early stopping on the monitored loss; the
        best weights are restored.
    reduce_lr_on_plateau : int or None, default=None
        Patience, in epochs, before the learning rate is divided by about
        3 when the monitored loss stops improving.
    checkpoint_dir : str, path or None, default=None
        Folder where training state is backed up after each epoch, so that
        an interrupted fit resumes where it stopped
        (:class:`keras.callbacks.BackupAndRestore`).
    callbacks : list of keras.callbacks.Callback or None, default=None
        Extra Keras callbacks. Where :meth:`fit` trains a network from its
        shrunk images (``resize``), their ``model`` is the part of the
        network after the shrink (the same layers and weights).
    warm_start : bool, default=False
        When ``True`` and the estimator is fitted, :meth:`fit` continues
        training the current network for ``epochs`` more epochs (in the
        first fit's precision). It refuses to when the parameters that shape
        the network (``conv_filters``, ``dense_units``, ``dropout``,
        ``activation``, ``batch_norm``, ``augmentation``, ``resize``,
        ``equalize``) changed since: the fitted network would not be the one
        they describe.
    n_jobs : int or None, default=None
        Threads that prefetch training batches of a lazy image source
        (``ImageLoader(lazy=True)``); ignored for arrays. (Predictions on a
        lazy source decode the next batch while the network runs on the
        current one.)
    verbose : int, default=0
        Progress of :meth:`fit`, as Keras shows it: 0 silent, 1 a progress
        bar for each epoch (for a terminal or a notebook), 2 one line per
        epoch with its loss (for log files). In a grid search,
        ``GridSearchCV(verbose=3)`` adds a line per fit with its candidate,
        fold and score. Predictions are silent.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout, augmentation, shuffling and
        the validation split. An int gives reproducible fits on CPU.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, as given in ``y``, sorted.
    model_ : keras.Model
        The trained network (outputs probabilities); with ``n_networks > 1``
        the ensemble, its members nested as ``"network0"``, ``"network1"``
        ... (:func:`cxrlearn.networks.member_networks`).
    input_shape_ : tuple of int
        Shape of one training image (or ``(n_features,)``).
    precision_ : {"float32", "bfloat16"}
        The precision the network computes in (``precision`` resolved for
        the machine of the first fit).
    history_ : dict of str to list of float
        Per-epoch training history (``loss``, ``val_loss``, ``learning_rate``
        ...), extended by warm-started fits. With ``n_networks > 1`` the
        epochs of network 0, then of network 1, ..., and a ``"network"``
        entry gives each epoch's network. A companion's history is its own
        (``companion_.history_``).
    companion_ : PneumoniaCNN
        The fitted companion (with ``companion``), whose ``model_`` shares
        its weights with the companion's part of ``model_``: its own
        predictions are those of the other scale alone.
    training_fingerprints_ : ndarray of uint64 or None
        Sorted 8-byte digests of the training images as the network saw
        them (:func:`cxrlearn.utils.image_fingerprints`), for
        :meth:`trained_on` (a fit on streamed :class:`cxrlearn.LazyImages`
        decodes them once more for it); ``None`` in files saved before
        cxrlearn kept them. Warm-started fits add theirs.
    training_hashes_ : ndarray of shape (n_distinct, 32), dtype uint8, or None
        Perceptual hashes of the training images
        (:func:`cxrlearn.utils.perceptual_hashes`), with which
        :meth:`trained_on` also finds the same films resized or re-encoded;
        ``None`` after a fit on rows that are not images (2-D X) or images
        under 8 pixels a side, and in files saved before cxrlearn kept them.
    n_features_in_ : int
        Second dimension of the training data (the image height for images).

    See Also
    --------
    cxrlearn.networks.build_pneumonia_cnn : The network builder.
    cxrlearn.io.save_model : Save a fitted model to a file that runs no code.

    Notes
    -----
    Saving: :func:`cxrlearn.io.save_model` / :func:`cxrlearn.io.load_model`
    write and read a :mod:`skops.io` file from which only cxrlearn's and
    scikit-learn's types are rebuilt. Pickling (:func:`joblib.dump`) works
    too -- the Keras network travels as native ``.keras`` bytes either way,
    restored with ``safe_mode=True`` -- but loading a pickle can run any code
    the file holds: only load pickles whose source you trust.

    Examples
    --------
    >>> from cxrlearn import PneumoniaCNN
    >>> from cxrlearn.datasets import make_synthetic_xrays
    >>> X, y = make_synthetic_xrays(60, image_size=32, random_state=0)
    >>> clf = PneumoniaCNN(conv_filters=(8, 16), dense_units=(16,), epochs=2,
    ...                    random_state=0).fit(X, y)
    >>> clf.classes_
    array(['NORMAL', 'PNEUMONIA'], dtype=...)
    >>> clf.predict_proba(X[:3]).shape
    (3, 2)
    """

    _parameter_constraints = {
        "activation": [str],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "dense_units": [tuple, list],
        "conv_filters": [tuple, list],
        "batch_norm": ["boolean"],
        "resize": [None, Interval(numbers.Integral, 1, None, closed="left"), tuple, list],
        "equalize": ["boolean"],
        "augmentation": [None, str, dict],
        "class_weight": [None, StrOptions({"balanced"}), dict],
        "balanced_batches": ["boolean"],
        "label_smoothing": [Interval(numbers.Real, 0, 1, closed="left")],
        "mixup_alpha": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_networks": [Interval(numbers.Integral, 1, None, closed="left")],
        "companion": [None, HasMethods(["fit", "get_params"])],
        "companion_weight": [Interval(numbers.Real, 0, 1, closed="neither")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "precision": [StrOptions(set(PRECISIONS))],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "lr_schedule": [StrOptions({"constant", "cosine"})],
        "optimizer": [str, HasMethods(["get_config"])],
        "ema_momentum": [None, Interval(numbers.Real, 0, 1, closed="neither")],
        "weight_decay": [None, Interval(numbers.Real, 0, None, closed="left")],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "early_stopping": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "reduce_lr_on_plateau": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "checkpoint_dir": [None, str, os.PathLike],
        "callbacks": [None, list],
        "warm_start": ["boolean"],
        "n_jobs": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        activation="relu",
        dropout=0.5,
        dense_units=(256,),
        conv_filters=(32, 64, 64, 128, 128),
        batch_norm=False,
        resize=None,
        equalize=False,
        augmentation=None,
        class_weight="balanced",
        balanced_batches=True,
        label_smoothing=0.0,
        mixup_alpha=None,
        epochs=10,
        n_networks=1,
        companion=None,
        companion_weight=0.5,
        batch_size=32,
        precision="auto",
        learning_rate=1e-3,
        lr_schedule="cosine",
        optimizer="adam",
        ema_momentum=None,
        weight_decay=None,
        validation_fraction=0.0,
        early_stopping=None,
        reduce_lr_on_plateau=None,
        checkpoint_dir=None,
        callbacks=None,
        warm_start=False,
        n_jobs=None,
        verbose=0,
        random_state=None,
    ):
        self.activation = activation
        self.dropout = dropout
        self.dense_units = dense_units
        self.conv_filters = conv_filters
        self.batch_norm = batch_norm
        self.resize = resize
        self.equalize = equalize
        self.augmentation = augmentation
        self.class_weight = class_weight
        self.balanced_batches = balanced_batches
        self.label_smoothing = label_smoothing
        self.mixup_alpha = mixup_alpha
        self.epochs = epochs
        self.n_networks = n_networks
        self.companion = companion
        self.companion_weight = companion_weight
        self.batch_size = batch_size
        self.precision = precision
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.optimizer = optimizer
        self.ema_momentum = ema_momentum
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.reduce_lr_on_plateau = reduce_lr_on_plateau
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ data
    def _validate_X_y(self, X, y, reset):
        """Validate images (arrays or lazy sources); return X and y."""
        if _is_lazy(X):
            if y is None and reset:
                raise ValueError(
                    f"{type(self).__name__} requires y to be passed, but the target y is None."
                )
            if reset:
                self.n_features_in_ = X.shape[1]
            elif X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is "
                    f"expecting {self.n_features_in_} features as input."
                )
            if y is not None:
                y = column_or_1d(y, warn=True)
                if len(y) != len(X):
                    raise ValueError(
                        f"X and y have inconsistent numbers of samples: {len(X)} images "
                        f"and {len(y)} labels."
                    )
            return X, y
        kwargs = dict(allow_nd=True, dtype=np.float32, reset=reset)
        if y is None:
            X = validate_data(self, X, **kwargs)
        else:
            X, y = validate_data(self, X, y, y_numeric=False, **kwargs)
        if X.ndim == 3:
            X = X[..., np.newaxis]
        if X.ndim > 4:
            raise ValueError(
                f"Expected images of shape (n_samples, height, width[, channels]) or a "
                f"2-D array, got an array with {X.ndim} dimensions {X.shape}."
            )
        return X, y

    def _check_input_shape(self, X):
        shape = tuple(np.shape(X)[1:])
        if len(shape) == 1 and len(self.input_shape_) == 3:
            raise ValueError(
                f"{type(self).__name__} was fitted on images of shape {self.input_shape_} "
                f"but got a 2-D array of shape {np.shape(X)}: pass images as an array "
                f"of shape (n_samples, height, width, channels), e.g. from ImageLoader."
            )
        if len(shape) == 2 and len(self.input_shape_) == 3:
            shape = shape + (1,)
        if len(shape) >= 2 and shape != self.input_shape_:
            raise ValueError(
                f"Images have shape {shape} but {type(self).__name__} was fitted on "
                f"images of shape {self.input_shape_}; load them with the same "
                f"image_size and color_mode as at fit time."
            )

    def _sample_weight(self, y_enc, sample_weight, n_samples):
        weights = _check_sample_weight(sample_weight, np.empty(n_samples), dtype=np.float32)
        if self.class_weight is None:
            return None if sample_weight is None else weights
        if isinstance(self.class_weight, str) and self.balanced_batches:
            # the batches already hold the classes equally often
            per_class = np.ones(len(self.classes_))
        elif isinstance(self.class_weight, str):
            per_class = compute_class_weight(
                "balanced", classes=np.arange(len(self.classes_)), y=y_enc
            )
        else:
            unknown = [k for k in self.class_weight if k not in set(self.classes_.tolist())]
            if unknown:
                raise ValueError(
                    f"class_weight has labels {unknown} that are not in the training "
                    f"classes {self.classes_.tolist()}."
                )
            per_class = np.array(
                [float(self.class_weight.get(c, 1.0)) for c in self.classes_.tolist()]
            )
        return (weights * per_class[y_enc]).astype(np.float32)

    def _encode_y(self, y, refit):
        check_classification_targets(y)
        classes, y_enc = np.unique(y, return_inverse=True)
        if refit:
            if len(classes) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes, but the "
                    f"data contain only one class: {classes[0]!r}."
                )
            self.classes_ = classes
            return y_enc
        unseen = np.setdiff1d(classes, self.classes_)
        if unseen.size:
            raise ValueError(
                f"y contains labels {unseen.tolist()} not seen in the first fit "
                f"(classes_={self.classes_.tolist()}); refit with warm_start=False."
            )
        return np.searchsorted(self.classes_, y)

    # --------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Train the network on images ``X`` with labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or LazyImages
            Images scaled to [0, 1] (e.g. from :class:`cxrlearn.ImageLoader`),
            or a lazy image source from ``ImageLoader(lazy=True)`` to
            stream batches from disk. 2-D arrays are accepted when
            ``conv_filters=()``.
        y : array-like of shape (n_samples,)
            Class labels (strings or integers).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-image weights, multiplied by the class weights.

        Returns
        -------
        self : PneumoniaCNN
            The fitted estimator.
        """
        if self.lr_schedule != "constant" and self.reduce_lr_on_plateau:
            raise ValueError(
                f"lr_schedule={self.lr_schedule!r} sets the learning rate of every step; "
                "it cannot be combined with reduce_lr_on_plateau."
            )
        if not isinstance(self.optimizer, str):
            for name, on_instance in (("ema_momentum", "use_ema and ema_momentum"),
                                      ("weight_decay", "weight_decay")):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name}={getattr(self, name)} applies to an optimizer given by "
                        f"name; set {on_instance} on the optimizer instance instead."
                    )
        if self.companion is not None and not isinstance(self.companion, PneumoniaCNN):
            raise ValueError(
                f"companion must be a PneumoniaCNN, got {type(self.companion).__name__}."
            )
        if self.companion is not None and self.companion.companion is not None:
            raise ValueError("a companion cannot have a companion of its own; give "
                             "companion=None to the inner PneumoniaCNN.")
        continuing = self.warm_start and hasattr(self, "model_")
        if continuing:
            self._check_can_continue()
        X, y = self._validate_X_y(X, y, reset=not continuing)
        y_enc = self._encode_y(y, refit=not continuing)
        if self.label_smoothing and len(self.classes_) > 2:
            raise ValueError(
                f"label_smoothing={self.label_smoothing} needs two classes; y has "
                f"{len(self.classes_)} and Keras's sparse categorical cross-entropy has "
                "no label smoothing. Use label_smoothing=0."
            )
        if self.mixup_alpha is not None and len(self.classes_) > 2:
            raise ValueError(
                f"mixup_alpha={self.mixup_alpha} needs two classes; y has "
                f"{len(self.classes_)} and Keras's sparse categorical cross-entropy "
                "takes no mixed targets. Use mixup_alpha=None."
            )
        if continuing:
            self._check_input_shape(X)
        fingerprints, hashes = _training_records(X, self.equalize)
        weights = self._sample_weight(y_enc, sample_weight, len(y_enc))
        rng = check_random_state(self.random_state)
        seeds = rng.randint(0, 2**31 - 1, size=3)
        # networks after the first: their own (initial weights, batch order) seeds,
        # drawn after the first network's, which are those of a single network
        more_seeds = rng.randint(0, 2**31 - 1, size=(self.n_networks - 1, 2))

        # TensorFlow's pools at this worker's CPU share, before it starts: they are
        # fixed then (a no-op outside joblib / Dask workers)
        limit_tf_threads_to_worker_share()
        target = y_enc.astype(np.float32 if len(self.classes_) == 2 else np.int32)
        fit_data, val_data = self._split(X, target, weights, seeds[1])
        if continuing:
            networks = [self.model_]
        else:
            from .networks import resolve_precision

            self.precision_ = resolve_precision(self.precision)
            self.input_shape_ = tuple(int(s) for s in X.shape[1:])
            init_seeds = [seeds[0], *more_seeds[:, 0]]
            networks = [self._new_network(int(seed), len(fit_data[1])) for seed in init_seeds]
            self.history_ = {}
        batch_seeds = [seeds[2], *more_seeds[:, 1]]
        trainees, fit_data, val_data = self._trainees(networks, fit_data, val_data)
        for i, trainee in enumerate(trainees):
            history = self._train(trainee, fit_data, val_data, int(batch_seeds[i]),
                                  None if len(networks) == 1 else i)
            for key, values in history.items():
                self.history_.setdefault(key, []).extend(float(v) for v in values)
            if len(networks) > 1:
                self.history_.setdefault("network", []).extend(
                    [i] * len(next(iter(history.values()), ()))
                )
        if not continuing:
            from .networks import add_companion, average_networks

            self.model_ = networks[0] if len(networks) == 1 else average_networks(networks)
            if self.companion is not None:
                self.companion_ = self._fit_companion(X, y, sample_weight, rng)
                self.model_ = add_companion(self.model_, self.companion_.model_,
                                            self.companion_weight)
            elif hasattr(self, "companion_"):
                del self.companion_
            self._adopt(self.model_)
        self.training_fingerprints_ = _seen(
            fingerprints, getattr(self, "training_fingerprints_", None), continuing)
        self.training_hashes_ = _seen(
            hashes, getattr(self, "training_hashes_", None), continuing)
        return self

    def _fit_companion(self, X, y, sample_weight, rng):
        """Train a clone of ``companion`` on the same images and labels."""
        from sklearn.base import clone

        companion = clone(self.companion)
        if companion.random_state is None and self.random_state is not None:
            # an int seeds it as it seeds this estimator (the companion's networks
            # are then those of the same recipe fitted alone with that seed)
            seed = self.random_state
            if not isinstance(seed, numbers.Integral):
                seed = int(rng.randint(0, 2**31 - 1))
            companion.set_params(random_state=seed)
        return companion.fit(X, y, sample_weight=sample_weight)

    def _check_can_continue(self):
        """``warm_start`` continues one compiled network, nothing else."""
        from .networks import companion_network, member_networks

        if companion_network(self.model_) is not None or self.companion is not None:
            raise ValueError(
                "warm_start continues training a single network; this estimator has a "
                "companion. Fit it anew (warm_start=False)."
            )
        n_fitted = len(member_networks(self.model_))
        if self.n_networks != 1 or n_fitted != 1:
            raise ValueError(
                f"warm_start continues training a single network; this estimator "
                f"has n_networks={self.n_networks} and its fitted model "
                f"{n_fitted} network(s). Fit an ensemble anew (warm_start=False)."
            )
        # the parameters that shape the network must still describe the fitted
        # one: else training would go on in the old network while the training
        # records (equalised or not) and repr followed the new parameters
        from .networks import _architecture_difference

        difference = _architecture_difference(self.model_, self._build_network(0))
        if difference is not None:
            raise ValueError(
                "warm_start continues training the fitted network, but this "
                "estimator's parameters now describe another network "
                f"({difference}). Set conv_filters, dense_units, dropout, activation, "
                "batch_norm, augmentation, resize and equalize back to those of the "
                "first fit, or fit anew (warm_start=False)."
            )

    def _build_network(self, seed):
        """An uncompiled network of this estimator's configuration."""
        from .networks import DTYPE_POLICIES, build_pneumonia_cnn

        return build_pneumonia_cnn(
            self.input_shape_,
            len(self.classes_),
            conv_filters=tuple(self.conv_filters),
            dense_units=tuple(self.dense_units),
            dropout=self.dropout,
            activation=self.activation,
            batch_norm=self.batch_norm,
            augmentation=self.augmentation,
            resize=self.resize,
            equalize=self.equalize,
            dtype=DTYPE_POLICIES[self.precision_],
            seed=seed,
        )

    def _new_network(self, seed, n_fit):
        """A compiled, untrained network of this estimator's configuration."""
        from . import _training

        model = self._build_network(seed)
        return _training.compile_model(
            model,
            n_classes=len(self.classes_),
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            lr_schedule=self.lr_schedule,
            decay_steps=self.epochs * -(-n_fit // self.batch_size),
            label_smoothing=self.label_smoothing,
            ema_momentum=self.ema_momentum,
            weight_decay=self.weight_decay,
        )

    def _trainees(self, networks, fit_data, val_data):
        """What trains: the networks, or their parts after a fixed shrink.

        Networks that open by shrinking their images without weights
        (``resize``, e.g. a companion) train from the shrunk images,
        computed once here instead of at every step
        (:func:`cxrlearn._training.split_shrinking_inputs`): the same inputs
        and steps, a 28 px companion's epochs on 176 px films for a fifth
        less CPU time (``benchmarks/companion.py``). Not for lazy sources,
        decoded batch by batch, nor with ``mixup_alpha``, which blends the
        images the network takes.
        """
        from . import _training

        if self.mixup_alpha is not None or _training.is_lazy(fit_data[0]):
            return networks, fit_data, val_data
        splits = [_training.split_shrinking_inputs(network) for network in networks]
        if any(split is None for split in splits):
            return networks, fit_data, val_data
        opening = splits[0][0]  # the same weightless layers in every network

        def shrunk(data):
            if data is None:
                return None
            return (_training.shrunk_inputs(opening, data[0]), *data[1:])

        trainees = [_training.compile_like(rest, network)
                    for (_, rest), network in zip(splits, networks)]
        return trainees, shrunk(fit_data), shrunk(val_data)

    def _train(self, network, fit_data, val_data, seed, index):
        """Train one network for ``epochs``; returns its Keras history.

        ``index`` numbers the networks of an ensemble (None for a single
        network): each backs up its training state in its own
        ``checkpoint_dir`` subfolder.
        """
        from . import _training

        workers = self.n_jobs or 1
        # arrays: one tf.data iterator repeating its epochs for the whole fit
        # (_training.make_training_data explains why); lazy sources: None
        steps = None if _training.is_lazy(fit_data[0]) else -(-len(fit_data[1]) // self.batch_size)
        train = _training.make_training_data(
            *fit_data, batch_size=self.batch_size, seed=seed, workers=workers,
            balanced=self.balanced_batches, mixup_alpha=self.mixup_alpha,
            repeat=None if steps is None else self.epochs,
        )
        validation = None
        if val_data is not None:
            validation = _training.make_training_data(
                *val_data, batch_size=self.batch_size, seed=0, shuffle=False,
                workers=workers,
            )
        checkpoint_dir = self.checkpoint_dir
        if checkpoint_dir is not None and index is not None:
            checkpoint_dir = os.path.join(checkpoint_dir, f"network{index}")
        callbacks = _training.make_callbacks(
            self.callbacks,
            monitor="val_loss" if validation is not None else "loss",
            early_stopping=self.early_stopping,
            reduce_lr_on_plateau=self.reduce_lr_on_plateau,
            checkpoint_dir=checkpoint_dir,
        )
        with _training.fitting_quietly():
            history = network.fit(
                train,
                epochs=self.epochs,
                steps_per_epoch=steps,
                validation_data=validation,
                callbacks=callbacks,
                shuffle=False,  # the training source shuffles itself, with our seed
                verbose=self.verbose,
            )
        return history.history

    def _split(self, X, target, weights, seed):
        """Hold out a stratified validation fraction when asked to."""
        if not self.validation_fraction:
            return (X, target, weights), None
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(target))
        stratify = target if np.min(np.bincount(target.astype(int))) >= 2 else None
        train_idx, val_idx = train_test_split(
            idx, test_size=self.validation_fraction, stratify=stratify,
            random_state=int(seed),
        )
        train_idx.sort()

        def take(rows):
            w = None if weights is None else weights[rows]
            return X[rows], target[rows], w

        return take(train_idx), take(val_idx)

    # ------------------------------------------------------------ prediction
    def _logits(self, X):
        check_is_fitted(self)
        if len(getattr(X, "shape", ())) >= 2:
            self._check_input_shape(X)  # before validate_data: a clearer message
        X, _ = self._validate_X_y(X, None, reset=False)
        self._check_input_shape(X)
        from . import _training

        return _training.predict_logits(
            self._logits_model, X, batch_size=self.batch_size,
            inference=getattr(self, "_inference", None),
        )

    def decision_function(self, X):
        """Pre-activation scores of the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or LazyImages
            Images, as for :meth:`fit`.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For two classes, the log-odds of ``classes_[1]``; otherwise the
            logits of each class.
        """
        logits = self._logits(X)
        return logits[:, 0] if logits.shape[1] == 1 else logits

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or LazyImages
            Images, as for :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities (float64) summing to 1 over each row.
        """
        from scipy.special import expit, softmax  # here: importing it costs 0.2 s

        logits = self._logits(X)
        if logits.shape[1] == 1:
            p = expit(logits[:, 0])
            return np.column_stack([1.0 - p, p])
        return softmax(logits, axis=1)

    def predict(self, X):
        """Most probable class of each image.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels]) or LazyImages
            Images, as for :meth:`fit`.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        check_is_fitted(self)
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def trained_on(self, X, *, near=True):
        """Which images the network was trained on, as pixels or as films.

        Scoring a model on its own training images, or choosing its
        threshold on them, flatters it without any error; ``cxrlearn
        evaluate``, ``report`` and ``threshold`` call this to say so.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])
            Decoded images, as for :meth:`predict` (e.g. from
            :class:`cxrlearn.ImageLoader`: the same files decoded by the same
            loader give the same pixels).
        near : bool, default=True
            Also count the same films resized or re-encoded -- e.g. the
            full-resolution original of a 224 px training image: images
            whose perceptual hash (:func:`cxrlearn.utils.perceptual_hashes`)
            is within ``NEAR_DUPLICATE_BITS`` (16) of 255 bits of a training
            image's (on Kermany-224, two films of different patients differ
            by 36 bits or more). Ignored (pixels only) when the model kept
            no hashes (``training_hashes_`` is None). False: pixel-identical
            images only.

        Returns
        -------
        mask : ndarray of shape (n_samples,), dtype bool
            True where an image is a training image (or, with `near`, the
            same film).

        Raises
        ------
        ValueError
            When the digests were not recorded (see
            ``training_fingerprints_``), or X is a lazy image source.

        Examples
        --------
        >>> import numpy as np
        >>> from PIL import Image
        >>> from cxrlearn import PneumoniaCNN
        >>> from cxrlearn.datasets import make_synthetic_xrays
        >>> X, y = make_synthetic_xrays(30, image_size=32, random_state=0)
        >>> clf = PneumoniaCNN(conv_filters=(4,), dense_units=(4,), epochs=1,
        ...                    random_state=0).fit(X[:20], y[:20])
        >>> clf.trained_on(X[15:25]).tolist()
        [True, True, True, True, True, False, False, False, False, False]
        >>> larger = np.asarray(Image.fromarray(X[0, ..., 0]).resize((48, 48)))
        >>> clf.trained_on(larger[np.newaxis, :32, :32]).tolist()  # a crop: not found
        [False]
        >>> resized = Image.fromarray(larger).resize((32, 32), Image.Resampling.BICUBIC)
        >>> clf.trained_on(np.asarray(resized)[np.newaxis]).tolist()  # the same film
        [True]
        >>> clf.trained_on(np.asarray(resized)[np.newaxis], near=False).tolist()
        [False]
        """
        check_is_fitted(self)
        if getattr(self, "training_fingerprints_", None) is None:
            raise ValueError(
                "this model does not know its training images: it was saved by a "
                "cxrlearn older than training_fingerprints_"
            )
        if _is_lazy(X):
            raise ValueError("trained_on needs decoded images, not a lazy image source")
        X, _ = self._validate_X_y(X, None, reset=False)
        seen = np.isin(image_fingerprints(X), self.training_fingerprints_)
        hashes = getattr(self, "training_hashes_", None) if near else None
        # None: not images to hash
        query = None if hashes is None else _image_hashes(X, self.equalize)
        if query is not None:
            seen |= _nearest_hash_distance(query, hashes) <= NEAR_DUPLICATE_BITS
        return seen

    # ----------------------------------------------------------- persistence
    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself
        state.pop("_logits_model", None)
        state.pop("_inference", None)
        model = state.pop("model_", None)
        if model is not None:
            from ._training import model_to_bytes

            state["_model_keras_bytes"] = model_to_bytes(model)
        companion = state.get("companion_")
        if companion is not None:
            # its network travels once, inside this one's model_ (rebuilt on loading)
            state["companion_"] = companion = copy.copy(companion)
            for name in ("model_", "_logits_model", "_inference"):
                companion.__dict__.pop(name, None)
        return state

    def __setstate__(self, state):
        data = state.pop("_model_keras_bytes", None)
        # files written before ``precision`` existed hold float32 networks
        state.setdefault("precision", "float32")
        # ... and before ``n_networks`` existed, one network
        state.setdefault("n_networks", 1)
        # ... and before ``label_smoothing``, ``mixup_alpha``, ``ema_momentum`` and
        # ``weight_decay`` existed, none
        state.setdefault("label_smoothing", 0.0)
        state.setdefault("mixup_alpha", None)
        state.setdefault("ema_momentum", None)
        state.setdefault("weight_decay", None)
        # ... and before ``resize``, none
        state.setdefault("resize", None)
        # ... and before ``equalize``, the loader's equalisation only
        state.setdefault("equalize", False)
        # ... and before ``companion``, none
        state.setdefault("companion", None)
        state.setdefault("companion_weight", 0.5)
        if data is not None:  # a fitted model, maybe from before precision_ / the digests
            state.setdefault("precision_", "float32")
            state.setdefault("training_fingerprints_", None)
            state.setdefault("training_hashes_", None)
        super().__setstate__(state)
        if data is not None:
            from ._training import load_model_bytes

            self._adopt(load_model_bytes(data))
            companion = getattr(self, "companion_", None)
            if companion is not None and not hasattr(companion, "model_"):
                companion._adopt(_companion_view(self.model_))

    def _adopt(self, model):
        """Take ``model`` as the fitted network (after a fit, on loading)."""
        from ._training import inference_function, logits_model

        self.model_ = model
        # a view of the network that outputs logits, shared weights, and its
        # graph function, traced on first use and reused by every prediction
        self._logits_model = logits_model(model)
        self._inference = inference_function(self._logits_model)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags


def _companion_view(model):
    """The companion part of an ``add_companion`` model as a network of its own.

    The image to the companion's ``"logits"`` and ``"probabilities"``,
    sharing the weights (and, for an ensemble, the nested members).
    """
    from .networks import companion_network
    from .utils import import_keras

    keras = import_keras()
    inner = companion_network(model)
    logits = inner.outputs[0]
    n_out = int(logits.shape[-1])
    outputs = keras.layers.Activation(
        "sigmoid" if n_out == 1 else "softmax", name="probabilities", dtype="float32"
    )(logits)
    return keras.Model(inner.inputs, outputs, name="companion")


def _seen(new, previous, continuing):
    """This fit's image digests or hashes, with those of the fits it continues.

    Sorted distinct rows; None when this fit or a fit it continues kept none.
    """
    if new is None or (continuing and previous is None):
        return None
    return np.unique(np.concatenate([previous, new]) if continuing else new, axis=0)


def _image_hashes(X, equalize=False):
    """Perceptual hashes of images, a chunk at a time; None if X holds no images.

    ``equalize``: hash the images as the network sees them, equalised
    (``PneumoniaCNN(equalize=True)``), which undoes changes of grey levels
    that would move the hash of the raw image (see ``perceptual_hashes``).
    """
    if X.ndim != 4 or min(X.shape[1:3]) < 8:
        return None

    def prepared(chunk):
        if not equalize:
            return chunk
        return np.stack([_normalize_intensity(image, "equalize") for image in chunk])

    return np.concatenate([perceptual_hashes(prepared(X[i : i + 256]))
                           for i in range(0, len(X), 256)])


def _training_records(X, equalize=False):
    """``(digests, hashes)`` of the training images (hashes None for non-images).

    A streamed source (:class:`cxrlearn.LazyImages`) is decoded once more for
    them, 256 images at a time: one pass against one per epoch of training.
    """
    if not _is_lazy(X):
        return image_fingerprints(X), _image_hashes(X, equalize)
    digests, hashes = [], []
    for start in range(0, len(X), 256):
        chunk = X[start : start + 256].load()
        digests.append(image_fingerprints(chunk))
        hashes.append(_image_hashes(chunk, equalize))
    return np.concatenate(digests), np.concatenate(hashes)
