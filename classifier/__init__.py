"""complaint-classifier: label Chinese buyer messages with the dispute they raise.

    >>> import classifier
    >>> model = classifier.load_model()
    >>> model.classify(["亲，拍了三天还不发货"])[0].label
    'late_shipment'
"""
from .artifact import ModelError, load as load_model, save as save_model
from .knowledge import complaint_deadline, info as label_info, labels
from .model import ComplaintClassifier, Prediction

LABELS = labels()

__all__ = ["ComplaintClassifier", "Prediction", "LABELS", "load_model", "save_model", "label_info",
           "complaint_deadline", "ModelError"]
__version__ = "0.1.0"
