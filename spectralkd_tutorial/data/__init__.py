"""Intent-classification data: CLINC150, Banking77, HWU64, SNIPS, and a small embedded set.

Every loader returns an :class:`IntentDataset`: three :class:`IntentSplit` objects (``train``,
``validation``, ``test``) holding parallel lists of texts and integer labels, the ordered
``label_names`` those integers index, and ``oos_label`` (the index of ``"oos"`` where the data set
has an out-of-scope class). ``source`` says which file or hub id was read and ``notes`` says how the
splits were made where upstream does not provide them. Texts are stripped of surrounding white
space; nothing else is changed, and no row is dropped (duplicates are kept).

Where the data come from
------------------------
``source="local"`` reads the upstream files, in their upstream formats, from a directory given by
``data_dir`` or the environment variable ``SPECTRALKD_DATA_DIR``. That directory holds one
sub-folder per data set (``clinc150/``, ``banking77/``, ``hwu64/``, ``snips/``); ``data_dir`` may
also point straight at one data set's own folder. ``source="hub"`` uses ``datasets.load_dataset``
on the parquet data the Hugging Face hub serves (recent ``datasets`` releases no longer run
loading scripts). ``source="auto"`` (the default) reads locally when a data directory is
configured and contains the data set, and otherwise goes to the hub; when ``HF_HUB_OFFLINE`` or
``HF_DATASETS_OFFLINE`` is set it never touches the network: it reads the ``datasets`` cache if
that library is itself in offline mode, and otherwise raises :class:`DataNotAvailableError`
(a ``FileNotFoundError``) naming ``SPECTRALKD_DATA_DIR`` and the hub id.

The data sets, their licences and their split conventions
---------------------------------------------------------
**CLINC150** (Larson et al., EMNLP-IJCNLP 2019; ``clinc/oos-eval``; CC BY 3.0). 150 in-scope
intents in 10 domains plus out-of-scope queries. Each ``data_*.json`` holds ``train``/``val``/
``test`` (in scope) and ``oos_train``/``oos_val``/``oos_test``; we merge each out-of-scope list
into the split of the same name with label ``"oos"``. ``label_names`` are the 150 intents sorted
alphabetically, then ``"oos"`` (so ``oos_label == 150``). Variants (files):

=============  ======================  =====  ====  =====  =========  =======  ========
variant        file                    train  val   test   oos_train  oos_val  oos_test
=============  ======================  =====  ====  =====  =========  =======  ========
``full``       data_full.json          15000  3000  4500   100        100      1000
``small``      data_small.json         7500   3000  4500   100        100      1000
``imbalanced`` data_imbalanced.json    10525  3000  4500   100        100      1000
``plus``       data_oos_plus.json      15000  3000  4500   250        100      1000
=============  ======================  =====  ====  =====  =========  =======  ========

The hub (``clinc/clinc_oos``) has the configs ``small``, ``imbalanced`` and ``plus`` but no
``full``; ``plus`` has the same in-scope data as ``full`` with 250 instead of 100 out-of-scope
training queries. Asking the hub for ``full`` raises; ``variant=None`` means ``full`` locally and
``plus`` from the hub (and ``notes`` says so).

**Banking77** (Casanueva et al., 2020; ``PolyAI-LDN/task-specific-datasets``; CC BY 4.0). 77
fine-grained banking intents; ``train.csv`` (10,003 rows) and ``test.csv`` (3,080 rows), header
``text,category``, read with the ``csv`` module. ``label_names`` follow ``categories.json``
(from the hub: the order of the ``label`` ClassLabel). There is no upstream validation split: we
carve a deterministic, stratified one from train (``validation_fraction`` of each intent, chosen
with ``seed``); the test split is untouched.

**HWU64** (Liu et al., IWSDS 2019; ``xliuhw/NLU-Evaluation-Data``; CC BY 4.0). 64 intents in 18
scenarios. Only the authors' cross-validation fold 1 is read (``KFold_1/trainset/*.csv``: 9,960
rows; ``KFold_1/testset/csv/*.csv``: 1,076 rows): semicolon-separated CSVs, one per intent. The
label is the file name without ``.csv`` (``scenario_intent``, checked against each row's
``scenario`` and ``intent``); the text is ``answer_from_anno`` (the normalised utterance without
slot brackets). Should that field be empty, we fall back to ``answer_annotation`` with its
``[slot : value]`` brackets reduced to the value, then to ``answer_from_user`` (this never happens
in fold 1). Validation is carved from train as for Banking77. There is no canonical hub copy, so
HWU64 is local only.

**SNIPS** (Coucke et al., 2018; ``sonos/nlu-benchmark``, 2017-06 custom intent engines; CC0 1.0,
with a request to cite the paper). 7 intents. We follow the split most papers use (Goo et al.,
2018: 13,084 / 700 / 700): train is ``train_<I>_full.json`` minus a held-out validation set of 100
utterances per intent, carved deterministically with ``seed`` (``validation_fraction`` is not used:
100 per intent is the convention), and test is ``validate_<I>.json`` (100 per intent). The
300-utterance ``train_<I>.json`` pools are not used. Utterance text is the concatenation of the
segments' ``text``. ``PlayMusic/train_PlayMusic_full.json`` stores one emoji as a UTF-8-encoded
surrogate pair; we decode with ``surrogatepass`` and re-join the pair, so the text holds the real
emoji. Local only (no canonical hub copy).

**embedded** (:func:`embedded_intents`): 360 short English utterances written by this project
from templates and slot values (8 intents + ``oos``, 40 each), split 24/8/8 per intent. It needs
no files and no network and is the data of the ``quick`` preset.

Carved validation splits are grouped by text (all copies of a duplicated text go to the same
side), so no validation text also occurs in the remaining training split.

Your own data
-------------
:func:`load_dataset` takes a *spec* (:func:`parse_dataset_spec`): a named set
(``clinc150:small``, ``banking77``, ...), a local ``.csv``/``.tsv``/``.jsonl``/``.json`` (JSON
Lines)/``.parquet`` file, or a hub id ``hf:ORG/NAME[:CONFIG]``; or separate ``train_file``/
``validation_file``/``test_file``. Column names are options (``text_column``, ``label_column``);
labels may be strings or integers; ``oos_label`` names an out-of-scope class and turns on the
OOS-aware metrics. One file is split into train/validation/test, stratified by label, grouped by
text and seeded (``split_seed``); the sizes are in ``IntentDataset.notes``. Bad data raise
:class:`DataError` (a ``ValueError``) naming the file, the line or row and the fix; a text in more
than one split gives a :class:`DuplicateTextWarning`.

Modules: :mod:`.splits` (containers, sampling, carving), one reader per upstream data set
(:mod:`.clinc150`, :mod:`.banking77`, :mod:`.hwu64`, :mod:`.snips`), :mod:`.hub`,
:mod:`.embedded` (templates in ``spectralkd_tutorial/resources/embedded_intents.json``) and
:mod:`.loading` (:func:`load_intent_dataset`, :func:`load_dataset`, :func:`resolve_data_dir`), and for
the user's data :mod:`.spec` (spec strings), :mod:`.files` (file readers) and :mod:`.assemble`
(label checks and carving).
"""

from __future__ import annotations

from .common import (CLINC150_VARIANTS, DATA_DIR_ENV, DATASET_NAMES, HUB_IDS, DataError, DataNotAvailableError,
    DuplicateTextWarning)
from .embedded import embedded_intents
from .loading import load_dataset, load_intent_dataset, resolve_data_dir
from .spec import FILE_FORMATS, DatasetSpec, parse_dataset_spec
from .splits import IntentDataset, IntentSplit

__all__ = [
    "DATA_DIR_ENV",
    "DATASET_NAMES",
    "CLINC150_VARIANTS",
    "HUB_IDS",
    "DataNotAvailableError",
    "IntentSplit",
    "IntentDataset",
    "load_intent_dataset",
    "embedded_intents",
    "resolve_data_dir",
    "FILE_FORMATS",
    "DataError",
    "DuplicateTextWarning",
    "DatasetSpec",
    "parse_dataset_spec",
    "load_dataset",
]
