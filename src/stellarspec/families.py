"""The model families, in one place: the workflow's rules (common.smk), the config check and
fit/reference read them from here. A config model is one of these families (`family:`, by
default its name); the schema's `family` enum lists the same names (a test keeps them equal).

No imports: the workflow reads this module when it builds the DAG.
"""

SVM = ("svm",)
DEEP = ("cnn", "bert_cnn", "bert_cnn_pretrained")  # torch, Lightning; CV may choose epochs
# Reference models (stellarspec.reference): CPU only and cheap, no torch, no `input` setting.
REFERENCE = ("majority", "snr_only", "template_fit")
ALL = SVM + DEEP + REFERENCE
