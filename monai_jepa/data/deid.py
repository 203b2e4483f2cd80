# Copyright (c) monai_jepa contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""De-identification of DICOM files: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

The profile's attribute table (PS3.15 Table E.1-1, "Basic Prof." column) is encoded below as data,
:data:`BASIC_PROFILE_TABLE`, one ``(tag, keyword, action)`` row per attribute, with the profile's action codes:

- ``D``: replace with a non-zero length dummy value consistent with the VR;
- ``Z``: replace with a zero length value (a sequence becomes empty);
- ``X``: remove;
- ``U``: replace the UID with a new one, consistently within a run;
- compound codes (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) are resolved by :func:`resolve_action` to the
  strictest form that keeps common IODs valid: ``Z`` or ``D`` for attributes that are type 1 or 2 in common image
  IODs (e.g. Content Date in multi-frame images, Device Serial Number in the Enhanced General Equipment module),
  ``U`` for reference sequences nested in other sequences (Source / Referenced Image Sequence inside the Derivation
  Image macro), ``X`` otherwise.

Besides the table, every private attribute (odd group) is removed unless listed in ``keep_private_tags``, repeating
overlay (60xx) and curve (50xx) groups are removed as a whole, Patient ID and Patient's Name become a keyed-hash
pseudonym of the original patient, and, with ``date_shift_days``, DA / DT values are shifted by a per-patient offset
(times are kept) instead of being emptied or removed. Pixel data and the transfer syntax are never touched, so burned-in
annotations are refused (:class:`~monai_jepa.data.errors.BurnedInAnnotationError`) unless explicitly allowed.

:data:`EXTRA_ATTRIBUTES` lists a few identifying attributes outside Table E.1-1 that are handled the same way
(instance creation date and time, file meta AE titles, newer patient identification attributes, frame date-times).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import hmac
import inspect
import logging
import os
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Union

import pydicom
from monai.utils import look_up_option
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    RE_VALID_UID_PREFIX,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from monai_jepa.utils.fileio import atomic_write

from .errors import BurnedInAnnotationError, DataError, MissingFileError, UnreadableFileError

__all__ = [
    "ProfileEntry",
    "BASIC_PROFILE_TABLE",
    "EXTRA_ATTRIBUTES",
    "BASIC_PROFILE",
    "resolve_action",
    "DeidChange",
    "DeidContext",
    "anonymize_dataset",
    "anonymize",
]

logger = logging.getLogger(__name__)


class ProfileEntry(NamedTuple):
    """One row of the confidentiality profile: the attribute's tag, DICOM keyword and action code."""

    tag: int
    keyword: str
    action: str


# PS3.15 Table E.1-1, Basic Application Level Confidentiality Profile column, sorted by tag. The three rows that name
# repeating groups or classes of tags (Curve Data (50xx,xxxx), Overlay Data (60xx,3000), Overlay Comments (60xx,4000)
# and "Private attributes") are applied by rule in `_process_dataset`, not listed here.
BASIC_PROFILE_TABLE: tuple[ProfileEntry, ...] = tuple(
    ProfileEntry(*row)
    for row in (
        (0x00001000, "AffectedSOPInstanceUID", "X"),
        (0x00001001, "RequestedSOPInstanceUID", "U"),
        (0x00020003, "MediaStorageSOPInstanceUID", "U"),
        (0x00041511, "ReferencedSOPInstanceUIDInFile", "U"),
        (0x00080014, "InstanceCreatorUID", "U"),
        (0x00080015, "InstanceCoercionDateTime", "X"),
        (0x00080018, "SOPInstanceUID", "U"),
        (0x00080020, "StudyDate", "Z"),
        (0x00080021, "SeriesDate", "X/D"),
        (0x00080022, "AcquisitionDate", "X/Z"),
        (0x00080023, "ContentDate", "Z/D"),
        (0x00080024, "OverlayDate", "X"),
        (0x00080025, "CurveDate", "X"),
        (0x0008002A, "AcquisitionDateTime", "X/Z/D"),
        (0x00080030, "StudyTime", "Z"),
        (0x00080031, "SeriesTime", "X/D"),
        (0x00080032, "AcquisitionTime", "X/Z"),
        (0x00080033, "ContentTime", "Z/D"),
        (0x00080034, "OverlayTime", "X"),
        (0x00080035, "CurveTime", "X"),
        (0x00080050, "AccessionNumber", "Z"),
        (0x00080058, "FailedSOPInstanceUIDList", "U"),
        (0x00080080, "InstitutionName", "X/Z/D"),
        (0x00080081, "InstitutionAddress", "X"),
        (0x00080082, "InstitutionCodeSequence", "X/Z/D"),
        (0x00080090, "ReferringPhysicianName", "Z"),
        (0x00080092, "ReferringPhysicianAddress", "X"),
        (0x00080094, "ReferringPhysicianTelephoneNumbers", "X"),
        (0x00080096, "ReferringPhysicianIdentificationSequence", "X"),
        (0x0008009C, "ConsultingPhysicianName", "Z"),
        (0x0008009D, "ConsultingPhysicianIdentificationSequence", "X"),
        (0x00080201, "TimezoneOffsetFromUTC", "X"),
        (0x00081010, "StationName", "X/Z/D"),
        (0x00081030, "StudyDescription", "X"),
        (0x0008103E, "SeriesDescription", "X"),
        (0x00081040, "InstitutionalDepartmentName", "X"),
        (0x00081041, "InstitutionalDepartmentTypeCodeSequence", "X"),
        (0x00081048, "PhysiciansOfRecord", "X"),
        (0x00081049, "PhysiciansOfRecordIdentificationSequence", "X"),
        (0x00081050, "PerformingPhysicianName", "X"),
        (0x00081052, "PerformingPhysicianIdentificationSequence", "X"),
        (0x00081060, "NameOfPhysiciansReadingStudy", "X"),
        (0x00081062, "PhysiciansReadingStudyIdentificationSequence", "X"),
        (0x00081070, "OperatorsName", "X/Z/D"),
        (0x00081072, "OperatorIdentificationSequence", "X/D"),
        (0x00081080, "AdmittingDiagnosesDescription", "X"),
        (0x00081084, "AdmittingDiagnosesCodeSequence", "X"),
        (0x00081110, "ReferencedStudySequence", "X/Z"),
        (0x00081111, "ReferencedPerformedProcedureStepSequence", "X/Z/D"),
        (0x00081120, "ReferencedPatientSequence", "X"),
        (0x00081140, "ReferencedImageSequence", "X/Z/U*"),
        (0x00081155, "ReferencedSOPInstanceUID", "U"),
        (0x00081195, "TransactionUID", "U"),
        (0x00082111, "DerivationDescription", "X"),
        (0x00082112, "SourceImageSequence", "X/Z/U*"),
        (0x00083010, "IrradiationEventUID", "U"),
        (0x00084000, "IdentifyingComments", "X"),
        (0x00100010, "PatientName", "Z"),
        (0x00100020, "PatientID", "Z"),
        (0x00100021, "IssuerOfPatientID", "X"),
        (0x00100030, "PatientBirthDate", "Z"),
        (0x00100032, "PatientBirthTime", "X"),
        (0x00100040, "PatientSex", "Z"),
        (0x00100050, "PatientInsurancePlanCodeSequence", "X"),
        (0x00100101, "PatientPrimaryLanguageCodeSequence", "X"),
        (0x00100102, "PatientPrimaryLanguageModifierCodeSequence", "X"),
        (0x00101000, "OtherPatientIDs", "X"),
        (0x00101001, "OtherPatientNames", "X"),
        (0x00101002, "OtherPatientIDsSequence", "X"),
        (0x00101005, "PatientBirthName", "X"),
        (0x00101010, "PatientAge", "X"),
        (0x00101020, "PatientSize", "X"),
        (0x00101030, "PatientWeight", "X"),
        (0x00101040, "PatientAddress", "X"),
        (0x00101050, "InsurancePlanIdentification", "X"),
        (0x00101060, "PatientMotherBirthName", "X"),
        (0x00101080, "MilitaryRank", "X"),
        (0x00101081, "BranchOfService", "X"),
        (0x00101090, "MedicalRecordLocator", "X"),
        (0x00101100, "ReferencedPatientPhotoSequence", "X"),
        (0x00102000, "MedicalAlerts", "X"),
        (0x00102110, "Allergies", "X"),
        (0x00102150, "CountryOfResidence", "X"),
        (0x00102152, "RegionOfResidence", "X"),
        (0x00102154, "PatientTelephoneNumbers", "X"),
        (0x00102155, "PatientTelecomInformation", "X"),
        (0x00102160, "EthnicGroup", "X"),
        (0x00102180, "Occupation", "X"),
        (0x001021A0, "SmokingStatus", "X"),
        (0x001021B0, "AdditionalPatientHistory", "X"),
        (0x001021C0, "PregnancyStatus", "X"),
        (0x001021D0, "LastMenstrualDate", "X"),
        (0x001021F0, "PatientReligiousPreference", "X"),
        (0x00102203, "PatientSexNeutered", "X/Z"),
        (0x00102297, "ResponsiblePerson", "X"),
        (0x00102299, "ResponsibleOrganization", "X"),
        (0x00104000, "PatientComments", "X"),
        (0x00120010, "ClinicalTrialSponsorName", "D"),
        (0x00120020, "ClinicalTrialProtocolID", "D"),
        (0x00120021, "ClinicalTrialProtocolName", "Z"),
        (0x00120030, "ClinicalTrialSiteID", "Z"),
        (0x00120031, "ClinicalTrialSiteName", "Z"),
        (0x00120040, "ClinicalTrialSubjectID", "D"),
        (0x00120042, "ClinicalTrialSubjectReadingID", "D"),
        (0x00120050, "ClinicalTrialTimePointID", "Z"),
        (0x00120051, "ClinicalTrialTimePointDescription", "X"),
        (0x00120060, "ClinicalTrialCoordinatingCenterName", "Z"),
        (0x00120071, "ClinicalTrialSeriesID", "X"),
        (0x00120072, "ClinicalTrialSeriesDescription", "X"),
        (0x00120081, "ClinicalTrialProtocolEthicsCommitteeName", "D"),
        (0x00120082, "ClinicalTrialProtocolEthicsCommitteeApprovalNumber", "X"),
        (0x0016002B, "MakerNote", "X"),
        (0x0016004B, "DeviceSettingDescription", "X"),
        (0x0016004D, "CameraOwnerName", "X"),
        (0x0016004E, "LensSpecification", "X"),
        (0x0016004F, "LensMake", "X"),
        (0x00160050, "LensModel", "X"),
        (0x00160051, "LensSerialNumber", "X"),
        (0x00160070, "GPSVersionID", "X"),
        (0x00160071, "GPSLatitudeRef", "X"),
        (0x00160072, "GPSLatitude", "X"),
        (0x00160073, "GPSLongitudeRef", "X"),
        (0x00160074, "GPSLongitude", "X"),
        (0x00160075, "GPSAltitudeRef", "X"),
        (0x00160076, "GPSAltitude", "X"),
        (0x00160077, "GPSTimeStamp", "X"),
        (0x00160078, "GPSSatellites", "X"),
        (0x00160079, "GPSStatus", "X"),
        (0x0016007A, "GPSMeasureMode", "X"),
        (0x0016007B, "GPSDOP", "X"),
        (0x0016007C, "GPSSpeedRef", "X"),
        (0x0016007D, "GPSSpeed", "X"),
        (0x0016007E, "GPSTrackRef", "X"),
        (0x0016007F, "GPSTrack", "X"),
        (0x00160080, "GPSImgDirectionRef", "X"),
        (0x00160081, "GPSImgDirection", "X"),
        (0x00160082, "GPSMapDatum", "X"),
        (0x00160083, "GPSDestLatitudeRef", "X"),
        (0x00160084, "GPSDestLatitude", "X"),
        (0x00160085, "GPSDestLongitudeRef", "X"),
        (0x00160086, "GPSDestLongitude", "X"),
        (0x00160087, "GPSDestBearingRef", "X"),
        (0x00160088, "GPSDestBearing", "X"),
        (0x00160089, "GPSDestDistanceRef", "X"),
        (0x0016008A, "GPSDestDistance", "X"),
        (0x0016008B, "GPSProcessingMethod", "X"),
        (0x0016008C, "GPSAreaInformation", "X"),
        (0x0016008D, "GPSDateStamp", "X"),
        (0x0016008E, "GPSDifferential", "X"),
        (0x00180010, "ContrastBolusAgent", "Z/D"),
        (0x00181000, "DeviceSerialNumber", "X/Z/D"),
        (0x00181002, "DeviceUID", "U"),
        (0x00181004, "PlateID", "X"),
        (0x00181005, "GeneratorID", "X"),
        (0x00181007, "CassetteID", "X"),
        (0x00181008, "GantryID", "X"),
        (0x00181009, "UniqueDeviceIdentifier", "X"),
        (0x0018100A, "UDISequence", "X"),
        (0x0018100B, "ManufacturerDeviceClassUID", "U"),
        (0x00181030, "ProtocolName", "X/D"),
        (0x001811BB, "AcquisitionFieldOfViewLabel", "D"),
        (0x00181400, "AcquisitionDeviceProcessingDescription", "X/D"),
        (0x00182042, "TargetUID", "U"),
        (0x00184000, "AcquisitionComments", "X"),
        (0x00185011, "TransducerIdentificationSequence", "X"),
        (0x0018700A, "DetectorID", "X/D"),
        (0x00189185, "RespiratoryMotionCompensationTechniqueDescription", "X"),
        (0x00189367, "XRaySourceID", "D"),
        (0x00189369, "SourceStartDateTime", "D"),
        (0x0018936A, "SourceEndDateTime", "D"),
        (0x00189371, "XRayDetectorID", "D"),
        (0x00189373, "XRayDetectorLabel", "X"),
        (0x0018937B, "MultienergyAcquisitionDescription", "X"),
        (0x0018937F, "DecompositionDescription", "X"),
        (0x00189424, "AcquisitionProtocolDescription", "X"),
        (0x00189516, "StartAcquisitionDateTime", "X/D"),
        (0x00189517, "EndAcquisitionDateTime", "X/D"),
        (0x00189937, "RequestedSeriesDescription", "X"),
        (0x0018A003, "ContributionDescription", "X"),
        (0x0020000D, "StudyInstanceUID", "U"),
        (0x0020000E, "SeriesInstanceUID", "U"),
        (0x00200010, "StudyID", "Z"),
        (0x00200052, "FrameOfReferenceUID", "U"),
        (0x00200200, "SynchronizationFrameOfReferenceUID", "U"),
        (0x00203401, "ModifyingDeviceID", "X"),
        (0x00203406, "ModifiedImageDescription", "X"),
        (0x00204000, "ImageComments", "X"),
        (0x00209158, "FrameComments", "X"),
        (0x00209161, "ConcatenationUID", "U"),
        (0x00209164, "DimensionOrganizationUID", "U"),
        (0x00281199, "PaletteColorLookupTableUID", "U"),
        (0x00281214, "LargePaletteColorLookupTableUID", "U"),
        (0x00284000, "ImagePresentationComments", "X"),
        (0x00320012, "StudyIDIssuer", "X"),
        (0x00321020, "ScheduledStudyLocation", "X"),
        (0x00321021, "ScheduledStudyLocationAETitle", "X"),
        (0x00321030, "ReasonForStudy", "X"),
        (0x00321032, "RequestingPhysician", "X"),
        (0x00321033, "RequestingService", "X"),
        (0x00321060, "RequestedProcedureDescription", "X/Z"),
        (0x00321066, "ReasonForVisit", "X"),
        (0x00321067, "ReasonForVisitCodeSequence", "X"),
        (0x00321070, "RequestedContrastAgent", "X"),
        (0x00324000, "StudyComments", "X"),
        (0x00340001, "FlowIdentifierSequence", "D"),
        (0x00340002, "FlowIdentifier", "D"),
        (0x00340005, "SourceIdentifier", "D"),
        (0x00340007, "FrameOriginTimestamp", "D"),
        (0x00380004, "ReferencedPatientAliasSequence", "X"),
        (0x00380010, "AdmissionID", "X"),
        (0x00380011, "IssuerOfAdmissionID", "X"),
        (0x00380014, "IssuerOfAdmissionIDSequence", "X"),
        (0x0038001E, "ScheduledPatientInstitutionResidence", "X"),
        (0x00380020, "AdmittingDate", "X"),
        (0x00380021, "AdmittingTime", "X"),
        (0x00380040, "DischargeDiagnosisDescription", "X"),
        (0x00380050, "SpecialNeeds", "X"),
        (0x00380060, "ServiceEpisodeID", "X"),
        (0x00380061, "IssuerOfServiceEpisodeID", "X"),
        (0x00380062, "ServiceEpisodeDescription", "X"),
        (0x00380064, "IssuerOfServiceEpisodeIDSequence", "X"),
        (0x00380300, "CurrentPatientLocation", "X"),
        (0x00380400, "PatientInstitutionResidence", "X"),
        (0x00380500, "PatientState", "X"),
        (0x00384000, "VisitComments", "X"),
        (0x003A0310, "MultiplexGroupUID", "U"),
        (0x003A0314, "ImpedanceMeasurementDateTime", "D"),
        (0x00400001, "ScheduledStationAETitle", "X"),
        (0x00400002, "ScheduledProcedureStepStartDate", "X"),
        (0x00400003, "ScheduledProcedureStepStartTime", "X"),
        (0x00400004, "ScheduledProcedureStepEndDate", "X"),
        (0x00400005, "ScheduledProcedureStepEndTime", "X"),
        (0x00400006, "ScheduledPerformingPhysicianName", "X"),
        (0x00400007, "ScheduledProcedureStepDescription", "X"),
        (0x00400009, "ScheduledProcedureStepID", "X"),
        (0x0040000B, "ScheduledPerformingPhysicianIdentificationSequence", "X"),
        (0x00400010, "ScheduledStationName", "X"),
        (0x00400011, "ScheduledProcedureStepLocation", "X"),
        (0x00400012, "PreMedication", "X"),
        (0x00400241, "PerformedStationAETitle", "X"),
        (0x00400242, "PerformedStationName", "X"),
        (0x00400243, "PerformedLocation", "X"),
        (0x00400244, "PerformedProcedureStepStartDate", "X"),
        (0x00400245, "PerformedProcedureStepStartTime", "X"),
        (0x00400250, "PerformedProcedureStepEndDate", "X"),
        (0x00400251, "PerformedProcedureStepEndTime", "X"),
        (0x00400253, "PerformedProcedureStepID", "X"),
        (0x00400254, "PerformedProcedureStepDescription", "X"),
        (0x00400275, "RequestAttributesSequence", "X"),
        (0x00400280, "CommentsOnThePerformedProcedureStep", "X"),
        (0x00400310, "CommentsOnRadiationDose", "X"),
        (0x0040050A, "SpecimenAccessionNumber", "X"),
        (0x00400512, "ContainerIdentifier", "D"),
        (0x00400513, "IssuerOfTheContainerIdentifierSequence", "Z"),
        (0x0040051A, "ContainerDescription", "X"),
        (0x00400551, "SpecimenIdentifier", "D"),
        (0x00400554, "SpecimenUID", "U"),
        (0x00400555, "AcquisitionContextSequence", "X/Z"),
        (0x00400562, "IssuerOfTheSpecimenIdentifierSequence", "Z"),
        (0x00400600, "SpecimenShortDescription", "X"),
        (0x00400602, "SpecimenDetailedDescription", "X"),
        (0x00400610, "SpecimenPreparationSequence", "Z"),
        (0x004006FA, "SlideIdentifier", "X"),
        (0x00401001, "RequestedProcedureID", "X"),
        (0x00401002, "ReasonForTheRequestedProcedure", "X"),
        (0x00401004, "PatientTransportArrangements", "X"),
        (0x00401005, "RequestedProcedureLocation", "X"),
        (0x0040100A, "ReasonForRequestedProcedureCodeSequence", "X"),
        (0x00401010, "NamesOfIntendedRecipientsOfResults", "X"),
        (0x00401011, "IntendedRecipientsOfResultsIdentificationSequence", "X"),
        (0x00401101, "PersonIdentificationCodeSequence", "D"),
        (0x00401102, "PersonAddress", "X"),
        (0x00401103, "PersonTelephoneNumbers", "X"),
        (0x00401104, "PersonTelecomInformation", "X"),
        (0x00401400, "RequestedProcedureComments", "X"),
        (0x00402001, "ReasonForTheImagingServiceRequest", "X"),
        (0x00402008, "OrderEnteredBy", "X"),
        (0x00402009, "OrderEntererLocation", "X"),
        (0x00402010, "OrderCallbackPhoneNumber", "X"),
        (0x00402011, "OrderCallbackTelecomInformation", "X"),
        (0x00402016, "PlacerOrderNumberImagingServiceRequest", "Z"),
        (0x00402017, "FillerOrderNumberImagingServiceRequest", "Z"),
        (0x00402400, "ImagingServiceRequestComments", "X"),
        (0x00403001, "ConfidentialityConstraintOnPatientDataDescription", "X"),
        (0x00404005, "ScheduledProcedureStepStartDateTime", "X"),
        (0x00404008, "ScheduledProcedureStepExpirationDateTime", "X"),
        (0x00404010, "ScheduledProcedureStepModificationDateTime", "X"),
        (0x00404011, "ExpectedCompletionDateTime", "X"),
        (0x00404023, "ReferencedGeneralPurposeScheduledProcedureStepTransactionUID", "U"),
        (0x00404025, "ScheduledStationNameCodeSequence", "X"),
        (0x00404027, "ScheduledStationGeographicLocationCodeSequence", "X"),
        (0x00404028, "PerformedStationNameCodeSequence", "X"),
        (0x00404030, "PerformedStationGeographicLocationCodeSequence", "X"),
        (0x00404034, "ScheduledHumanPerformersSequence", "X"),
        (0x00404035, "ActualHumanPerformersSequence", "X"),
        (0x00404036, "HumanPerformerOrganization", "X"),
        (0x00404037, "HumanPerformerName", "X"),
        (0x00404050, "PerformedProcedureStepStartDateTime", "X"),
        (0x00404051, "PerformedProcedureStepEndDateTime", "X"),
        (0x00404052, "ProcedureStepCancellationDateTime", "X"),
        (0x0040A027, "VerifyingOrganization", "D"),
        (0x0040A073, "VerifyingObserverSequence", "D"),
        (0x0040A075, "VerifyingObserverName", "D"),
        (0x0040A078, "AuthorObserverSequence", "X"),
        (0x0040A07A, "ParticipantSequence", "X"),
        (0x0040A07C, "CustodialOrganizationSequence", "X"),
        (0x0040A088, "VerifyingObserverIdentificationCodeSequence", "Z"),
        (0x0040A123, "PersonName", "D"),
        (0x0040A124, "UID", "U"),
        (0x0040A171, "ObservationUID", "U"),
        (0x0040A172, "ReferencedObservationUIDTrial", "U"),
        (0x0040A192, "ObservationDateTrial", "X"),
        (0x0040A193, "ObservationTimeTrial", "X"),
        (0x0040A307, "CurrentObserverTrial", "X"),
        (0x0040A352, "VerbalSourceTrial", "X"),
        (0x0040A353, "AddressTrial", "X"),
        (0x0040A354, "TelephoneNumberTrial", "X"),
        (0x0040A358, "VerbalSourceIdentifierCodeSequenceTrial", "X"),
        (0x0040A402, "ObservationSubjectUIDTrial", "U"),
        (0x0040A730, "ContentSequence", "D"),
        (0x0040DB0C, "TemplateExtensionOrganizationUID", "U"),
        (0x0040DB0D, "TemplateExtensionCreatorUID", "U"),
        (0x0050001B, "ContainerComponentID", "X"),
        (0x00500020, "DeviceDescription", "X"),
        (0x00500021, "LongDeviceDescription", "X"),
        (0x00620021, "TrackingUID", "U"),
        (0x00700001, "GraphicAnnotationSequence", "D"),
        (0x00700084, "ContentCreatorName", "Z/D"),
        (0x00700086, "ContentCreatorIdentificationCodeSequence", "X"),
        (0x0070031A, "FiducialUID", "U"),
        (0x00701101, "PresentationDisplayCollectionUID", "U"),
        (0x00701102, "PresentationSequenceCollectionUID", "U"),
        (0x00880140, "StorageMediaFileSetUID", "U"),
        (0x00880200, "IconImageSequence", "X"),
        (0x00880904, "TopicTitle", "X"),
        (0x00880906, "TopicSubject", "X"),
        (0x00880910, "TopicAuthor", "X"),
        (0x00880912, "TopicKeywords", "X"),
        (0x04000100, "DigitalSignatureUID", "U"),
        (0x04000402, "ReferencedDigitalSignatureSequence", "X"),
        (0x04000403, "ReferencedSOPInstanceMACSequence", "X"),
        (0x04000404, "MAC", "X"),
        (0x04000550, "ModifiedAttributesSequence", "X"),
        (0x04000551, "NonconformingModifiedAttributesSequence", "X"),
        (0x04000552, "NonconformingDataElementValue", "X"),
        (0x04000561, "OriginalAttributesSequence", "X"),
        (0x04000600, "InstanceOriginStatus", "X"),
        (0x20300020, "TextString", "X"),
        (0x22000002, "LabelText", "X/Z"),
        (0x22000005, "BarcodeValue", "X/Z"),
        (0x30060002, "StructureSetLabel", "D"),
        (0x30060004, "StructureSetName", "X"),
        (0x30060006, "StructureSetDescription", "X"),
        (0x30060008, "StructureSetDate", "Z"),
        (0x30060009, "StructureSetTime", "X/D"),
        (0x30060024, "ReferencedFrameOfReferenceUID", "U"),
        (0x30060026, "ROIName", "Z"),
        (0x30060028, "ROIDescription", "X"),
        (0x30060038, "ROIGenerationDescription", "X"),
        (0x30060085, "ROIObservationLabel", "X"),
        (0x30060088, "ROIObservationDescription", "X"),
        (0x300600A6, "ROIInterpreter", "Z"),
        (0x300600C2, "RelatedFrameOfReferenceUID", "U"),
        (0x30080054, "FirstTreatmentDate", "X/D"),
        (0x30080056, "MostRecentTreatmentDate", "X/D"),
        (0x30080105, "SourceSerialNumber", "X/Z"),
        (0x30080250, "TreatmentDate", "X/D"),
        (0x30080251, "TreatmentTime", "X/D"),
        (0x300A0002, "RTPlanLabel", "D"),
        (0x300A0003, "RTPlanName", "X"),
        (0x300A0004, "RTPlanDescription", "X"),
        (0x300A0006, "RTPlanDate", "X/D"),
        (0x300A0007, "RTPlanTime", "X/D"),
        (0x300A000E, "PrescriptionDescription", "X"),
        (0x300A0013, "DoseReferenceUID", "U"),
        (0x300A0016, "DoseReferenceDescription", "X"),
        (0x300A0072, "FractionGroupDescription", "X"),
        (0x300A0083, "ReferencedDoseReferenceUID", "U"),
        (0x300A00B2, "TreatmentMachineName", "X"),
        (0x300A00C3, "BeamDescription", "X"),
        (0x300A00DD, "BolusDescription", "X"),
        (0x300A0196, "FixationDeviceDescription", "X"),
        (0x300A01A6, "ShieldingDeviceDescription", "X"),
        (0x300A01B2, "SetupTechniqueDescription", "X"),
        (0x300A0216, "SourceManufacturer", "X"),
        (0x300A02EB, "CompensatorDescription", "X"),
        (0x300A0608, "TreatmentPositionGroupLabel", "D"),
        (0x300A0609, "TreatmentPositionGroupUID", "U"),
        (0x300A0611, "RTAccessoryHolderSlotID", "Z"),
        (0x300A0615, "RTAccessoryDeviceSlotID", "Z"),
        (0x300A0619, "RadiationDoseIdentificationLabel", "D"),
        (0x300A0623, "RadiationDoseInVivoMeasurementLabel", "D"),
        (0x300A062A, "RTToleranceSetLabel", "D"),
        (0x300A0650, "PatientSetupUID", "U"),
        (0x300A0676, "EquipmentFrameOfReferenceDescription", "X"),
        (0x300A067C, "RadiationGenerationModeLabel", "D"),
        (0x300A067D, "RadiationGenerationModeDescription", "Z"),
        (0x300A0700, "TreatmentSessionUID", "U"),
        (0x300A0734, "TreatmentToleranceViolationDescription", "D"),
        (0x300A0736, "TreatmentToleranceViolationDateTime", "D"),
        (0x300A073A, "RecordedRTControlPointDateTime", "D"),
        (0x300A0741, "InterlockDateTime", "D"),
        (0x300A0742, "InterlockDescription", "D"),
        (0x300A0760, "OverrideDateTime", "D"),
        (0x300A0783, "InterlockOriginDescription", "D"),
        (0x300C0113, "ReasonForOmissionDescription", "X"),
        (0x300E0008, "ReviewerName", "X/Z"),
        (0x30100006, "ConceptualVolumeUID", "U"),
        (0x3010000B, "ReferencedConceptualVolumeUID", "U"),
        (0x3010000F, "ConceptualVolumeCombinationDescription", "Z"),
        (0x30100013, "ConstituentConceptualVolumeUID", "U"),
        (0x30100015, "SourceConceptualVolumeUID", "U"),
        (0x30100017, "ConceptualVolumeDescription", "Z"),
        (0x3010001B, "DeviceAlternateIdentifier", "Z"),
        (0x3010002D, "DeviceLabel", "D"),
        (0x30100031, "ReferencedFiducialsUID", "U"),
        (0x30100033, "UserContentLabel", "D"),
        (0x30100034, "UserContentLongLabel", "D"),
        (0x30100035, "EntityLabel", "D"),
        (0x30100036, "EntityName", "X"),
        (0x30100037, "EntityDescription", "X"),
        (0x30100038, "EntityLongLabel", "D"),
        (0x3010003B, "RTTreatmentPhaseUID", "U"),
        (0x30100043, "ManufacturerDeviceIdentifier", "Z"),
        (0x3010004C, "IntendedPhaseStartDate", "X/D"),
        (0x3010004D, "IntendedPhaseEndDate", "X/D"),
        (0x30100054, "RTPrescriptionLabel", "D"),
        (0x30100056, "RTTreatmentApproachLabel", "X/D"),
        (0x3010005A, "RTPhysicianIntentNarrative", "Z"),
        (0x3010005C, "ReasonForSuperseding", "Z"),
        (0x30100061, "PriorTreatmentDoseDescription", "X"),
        (0x3010006E, "DosimetricObjectiveUID", "U"),
        (0x3010006F, "ReferencedDosimetricObjectiveUID", "U"),
        (0x30100077, "TreatmentSite", "D"),
        (0x3010007A, "TreatmentTechniqueNotes", "Z"),
        (0x3010007B, "PrescriptionNotes", "Z"),
        (0x3010007F, "FractionationNotes", "Z"),
        (0x30100081, "PrescriptionNotesSequence", "Z"),
        (0x40000010, "Arbitrary", "X"),
        (0x40004000, "TextComments", "X"),
        (0x40080042, "ResultsIDIssuer", "X"),
        (0x40080102, "InterpretationRecorder", "X"),
        (0x4008010A, "InterpretationTranscriber", "X"),
        (0x4008010B, "InterpretationText", "X"),
        (0x4008010C, "InterpretationAuthor", "X"),
        (0x40080111, "InterpretationApproverSequence", "X"),
        (0x40080114, "PhysicianApprovingInterpretation", "X"),
        (0x40080115, "InterpretationDiagnosisDescription", "X"),
        (0x40080118, "ResultsDistributionListSequence", "X"),
        (0x40080119, "DistributionName", "X"),
        (0x4008011A, "DistributionAddress", "X"),
        (0x40080202, "InterpretationIDIssuer", "X"),
        (0x40080300, "Impressions", "X"),
        (0x40084000, "ResultsComments", "X"),
        (0xFFFAFFFA, "DigitalSignaturesSequence", "X"),
        (0xFFFCFFFC, "DataSetTrailingPadding", "X"),
    )
)

# Identifying attributes outside Table E.1-1, handled with the same action codes.
EXTRA_ATTRIBUTES: tuple[ProfileEntry, ...] = tuple(
    ProfileEntry(*row)
    for row in (
        (0x00020016, "SourceApplicationEntityTitle", "X"),
        (0x00020017, "SendingApplicationEntityTitle", "X"),
        (0x00020018, "ReceivingApplicationEntityTitle", "X"),
        (0x00020100, "PrivateInformationCreatorUID", "X"),
        (0x00020102, "PrivateInformation", "X"),
        (0x00080012, "InstanceCreationDate", "X"),
        (0x00080013, "InstanceCreationTime", "X"),
        (0x00080051, "IssuerOfAccessionNumberSequence", "X"),
        (0x00080055, "StationAETitle", "X"),
        (0x0008010D, "ContextGroupExtensionCreatorUID", "U"),
        (0x00100024, "IssuerOfPatientIDQualifiersSequence", "X"),
        (0x00100026, "SourcePatientGroupIdentificationSequence", "X"),
        (0x00100027, "GroupOfPatientsIdentificationSequence", "X"),
        (0x00100033, "PatientBirthDateInAlternativeCalendar", "X"),
        (0x00100034, "PatientDeathDateInAlternativeCalendar", "X"),
        (0x00100035, "PatientAlternativeCalendar", "X"),
        (0x00102161, "EthnicGroupCodeSequence", "X"),
        (0x00189074, "FrameAcquisitionDateTime", "D"),
        (0x00189151, "FrameReferenceDateTime", "D"),
        (0x00880130, "StorageMediaFileSetID", "X"),
    )
)

#: Every attribute handled by tag: ``{tag: ProfileEntry}`` (Table E.1-1 and :data:`EXTRA_ATTRIBUTES`).
BASIC_PROFILE: dict[int, ProfileEntry] = {entry.tag: entry for entry in BASIC_PROFILE_TABLE + EXTRA_ATTRIBUTES}


# Compound codes of attributes that are type 1 or 2 in common image IODs resolve to Z or D instead of X.
_REQUIRED_IN_COMMON_IODS: dict[int, str] = {
    0x00080023: "D",  # Content Date: type 1 in multi-frame, enhanced and segmentation IODs
    0x00080033: "D",  # Content Time: idem
    0x0008002A: "D",  # Acquisition DateTime: type 1C in enhanced CT / MR / US / XA IODs
    0x00181000: "D",  # Device Serial Number: type 1 in the Enhanced General Equipment module
    0x00400555: "Z",  # Acquisition Context Sequence: type 2 in the Acquisition Context module
    0x30060009: "D",  # Structure Set Time: type 2 in the Structure Set module (Z not allowed)
    0x300A0006: "D",  # RT Plan Date: type 2 in the RT General Plan module (Z not allowed)
    0x300A0007: "D",  # RT Plan Time: idem
    0x30080250: "D",  # Treatment Date: type 2 in RT treatment records (Z not allowed)
    0x30080251: "D",  # Treatment Time: idem
}
_ACTIONS = ("D", "Z", "X", "K", "C", "U")
_PATIENT_NAME, _PATIENT_ID = 0x00100010, 0x00100020
_BURNED_IN_MODALITIES = ("US", "SC", "XC")
# never shifted, even with date shifting: the table's Z / X applies
_NEVER_SHIFTED = frozenset({0x00100030, 0x00100032})  # Patient's Birth Date, Patient's Birth Time
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float / Double Float Pixel Data
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")
_AUTO_SHIFT_RANGE = (365, 3652)  # "auto" offsets are drawn in [-3652, -365] days
_DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: dict[str, Any] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    **dict.fromkeys(("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"), 0),
    **dict.fromkeys(("OB", "OW", "OD", "OF", "OL", "OV", "UN"), b""),
}
_METHOD_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "private": ("113111", "Retain Safe Private Option"),
}
_EXACT_PRIVATE = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")
_CREATOR_PRIVATE = re.compile(r'^\(?\s*([0-9A-Fa-f]{4})\s*,\s*"?([^",]+?)"?\s*,\s*([0-9A-Fa-f]{2})\s*\)?$')

DateShift = Union[int, Literal["auto"], None]


def resolve_action(code: str, tag: int, nested: bool = False) -> str:
    """Resolve a profile action code, possibly compound, to one action.

    Args:
        code: a Table E.1-1 code: ``"D"``, ``"Z"``, ``"X"``, ``"K"``, ``"C"``, ``"U"`` or a compound such as ``"X/Z"``,
            ``"X/D"``, ``"Z/D"``, ``"X/Z/D"``, ``"X/Z/U*"``.
        tag: the attribute's tag as an int (``0xGGGGEEEE``); decides whether common IODs require the attribute.
        nested: whether the attribute sits inside a sequence item (reference sequences there are kept with their UIDs
            replaced, as the Derivation Image and Referenced Image macros require them).

    Returns:
        One of ``"D"``, ``"Z"``, ``"X"``, ``"K"``, ``"C"``, ``"U"``.

    Example::

        resolve_action("X/Z/D", 0x00080080)  # Institution Name -> "X"
        resolve_action("X/Z/D", 0x00181000)  # Device Serial Number -> "D"
        resolve_action("X/Z/U*", 0x00082112, nested=True)  # Source Image Sequence -> "U"
    """
    options = [look_up_option(opt.strip().rstrip("*"), _ACTIONS) for opt in code.split("/")]
    if len(options) == 1:
        return options[0]
    if _REQUIRED_IN_COMMON_IODS.get(tag) in options:
        return _REQUIRED_IN_COMMON_IODS[tag]
    if nested and "U" in options:
        return "U"
    return "X" if "X" in options else options[0]


_TOP_LEVEL_ACTIONS = {tag: resolve_action(entry.action, tag) for tag, entry in BASIC_PROFILE.items()}
_NESTED_ACTIONS = {tag: resolve_action(entry.action, tag, nested=True) for tag, entry in BASIC_PROFILE.items()}


@dataclass(frozen=True)
class DeidChange:
    """One changed attribute (never its value).

    Attributes:
        tag: the attribute's tag as ``"(GGGG,EEEE)"``.
        keyword: its DICOM keyword (empty for private attributes).
        action: what was done: ``"remove"``, ``"remove_private"``, ``"empty"``, ``"dummy"``, ``"replace_uid"``,
            ``"pseudonym"``, ``"shift_date"`` or ``"set"`` (de-identification attributes written by this module).
        path: where the attribute sits: ``""`` at the top level, else the enclosing sequences and item indices, e.g.
            ``"(0008,1115)[0].(0008,114A)[2]"``.
    """

    tag: str
    keyword: str
    action: str
    path: str = ""


@dataclass
class DeidContext:
    """The state that keeps one de-identification run consistent across files.

    It holds the UID map (original -> new, one-to-one), the per-patient pseudonyms and date offsets, and the run's
    options. Pass the same context to :func:`anonymize_dataset` for every dataset of a run.

    Args:
        salt: secret mixed into every hash (UIDs, pseudonyms, "auto" date offsets): the same salt gives the same
            output, so keep it private. ``None`` draws a random salt, so runs cannot be linked.
        uid_root: UID prefix of the new UIDs, ending with ``"."`` (at most 54 characters); new UIDs are
            ``generate_uid(prefix=uid_root, entropy_srcs=[salt, original])``. ``None`` builds ``"2.25.<int>"`` UIDs from
            a UUID derived from the salt and the original UID.
        date_shift_days: ``None`` removes or empties dates as the profile says; an int shifts every DA and DT value
            by that many days (times are kept); ``"auto"`` shifts by a per-patient offset in [-3652, -365] days
            derived from the salt and the original Patient ID. Patient's Birth Date is always emptied.
        keep_private_tags: private attributes to keep: exact tags ``"gggg,eeee"`` (or ``"(gggg,eeee)"``,
            ``"ggggeeee"``) or creator-qualified ``'gggg,"CREATOR",ee'`` (``ee``: the element's last two hex digits).
            Their private creator elements are kept with them. Everything else in odd groups is removed.
        allow_burned_in: de-identify files that declare ``BurnedInAnnotation == "YES"`` instead of refusing them.

    The run's state is public: ``uid_map`` (original -> new UID), ``pseudonyms`` and ``date_offsets`` (per patient
    key), and ``warnings`` (messages about possibly burned-in pixels). Keep them secret like the salt.

    Example::

        ctx = DeidContext(salt="project-secret", date_shift_days="auto")
        for ds in datasets:
            changes = anonymize_dataset(ds, ctx)
    """

    salt: str | None = None
    uid_root: str | None = None
    date_shift_days: DateShift = None
    keep_private_tags: Sequence[str] = ()
    allow_burned_in: bool = False
    uid_map: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    pseudonyms: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    date_offsets: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    warnings: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.salt is None:
            self.salt = secrets.token_hex(16)
        elif not isinstance(self.salt, str):
            raise ValueError(f"salt must be a str or None, got {type(self.salt).__name__}.")
        if self.uid_root is not None and (len(self.uid_root) > 54 or not re.match(RE_VALID_UID_PREFIX, self.uid_root)):
            raise ValueError(
                f"uid_root must be a valid UID prefix ending with '.' of at most 54 characters, got {self.uid_root!r}."
            )
        shift = self.date_shift_days
        if isinstance(shift, str):
            self.date_shift_days = look_up_option(shift, ("auto",))
        elif shift is not None and (isinstance(shift, bool) or not isinstance(shift, int)):
            raise ValueError(f"date_shift_days must be an int, 'auto' or None, got {shift!r}.")
        if isinstance(self.keep_private_tags, str):
            raise ValueError(
                f"keep_private_tags must be a sequence of tag strings, got the str {self.keep_private_tags!r}."
            )
        self.keep_private_tags = tuple(self.keep_private_tags)
        self._exact_private, self._creator_private = _parse_private_rules(self.keep_private_tags)
        self._new_uids: set[str] = set(self.uid_map.values())

    @property
    def shifts_dates(self) -> bool:
        """Whether DA / DT values are shifted rather than removed or emptied."""
        return self.date_shift_days is not None

    def _digest(self, domain: str, value: str) -> bytes:
        return hmac.new(str(self.salt).encode(), f"{domain}\x00{value}".encode(), hashlib.sha256).digest()

    def map_uid(self, uid: str) -> str:
        """Return the new UID of ``uid``: the same one every time within this context, distinct for distinct UIDs."""
        uid = str(uid).strip().rstrip("\x00")
        new = self.uid_map.get(uid)
        if new is None:
            if self.uid_root is not None:
                new = str(generate_uid(prefix=self.uid_root, entropy_srcs=[str(self.salt), uid]))
            else:
                new = f"2.25.{uuid.UUID(bytes=self._digest('uid', uid)[:16], version=4).int}"
            if new in self._new_uids:  # a hash collision, or a UID that was already a replacement
                raise ValueError(f"UID mapping is not one-to-one: {new} would be produced twice; use another salt.")
            self.uid_map[uid] = new
            self._new_uids.add(new)
        return new

    def pseudonym(self, patient_key: str) -> str:
        """Return the pseudonym (Patient ID and Patient's Name) of the patient identified by ``patient_key``."""
        if patient_key not in self.pseudonyms:
            self.pseudonyms[patient_key] = "ANON" + self._digest("patient", patient_key).hex()[:12].upper()
        return self.pseudonyms[patient_key]

    def date_offset(self, patient_key: str) -> int:
        """Return the date shift in days of the patient identified by ``patient_key`` (0 without date shifting)."""
        if self.date_shift_days is None:
            return 0
        if patient_key not in self.date_offsets:
            if self.date_shift_days == "auto":
                low, high = _AUTO_SHIFT_RANGE
                draw = int.from_bytes(self._digest("date", patient_key)[:8], "big")
                self.date_offsets[patient_key] = -(low + draw % (high - low + 1))
            else:
                self.date_offsets[patient_key] = int(self.date_shift_days)
        return self.date_offsets[patient_key]

    def keeps_private(self, tag: int, creator: str | None) -> bool:
        """Whether the private attribute ``tag`` (whose block is reserved by ``creator``) is on the keep list."""
        if tag in self._exact_private:
            return True
        return creator is not None and (tag >> 16, creator.strip(), tag & 0xFF) in self._creator_private


def _parse_private_rules(rules: Iterable[str]) -> tuple[set[int], set[tuple[int, str, int]]]:
    exact: set[int] = set()
    qualified: set[tuple[int, str, int]] = set()
    for rule in rules:
        text = str(rule).strip()
        if match := _EXACT_PRIVATE.match(text):
            group, elem = int(match[1], 16), int(match[2], 16)
            exact.add((group << 16) | elem)
        elif match := _CREATOR_PRIVATE.match(text):
            group, elem = int(match[1], 16), int(match[3], 16)
            qualified.add((group, match[2].strip(), elem))
        else:
            raise ValueError(
                f"keep_private_tags entries must be 'gggg,eeee' or 'gggg,\"CREATOR\",ee' (hex), got {rule!r}."
            )
        if group % 2 == 0:
            raise ValueError(f"keep_private_tags entry {rule!r} is not private: its group {group:04X} is even.")
    return exact, qualified


def _tag_str(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _patient_key(ds: Dataset) -> str:
    patient_id = str(ds[_PATIENT_ID].value or "").strip() if _PATIENT_ID in ds else ""
    if patient_id:
        return "id:" + patient_id
    name = str(ds[_PATIENT_NAME].value or "").strip() if _PATIENT_NAME in ds else ""
    return "name:" + name


def _is_repeating_group(group: int) -> bool:
    """Curve (50xx) and overlay (60xx) repeating groups, removed as a whole."""
    return group % 2 == 0 and (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E)


def _shift_date_text(value: str, days: int, vr: str) -> str | None:
    """Shift a DA value, or the date part of a DT value, by ``days``; ``None`` when it cannot be parsed."""
    text = value.strip()
    digits = len(text) if vr == "DA" else min(len(text), 8)
    if digits not in (4, 6, 8) or not text[:digits].isdigit():
        return None
    padded = text[:digits] + "0101"[digits - 4 :] if digits < 8 else text[:8]
    try:
        day = datetime.date(int(padded[:4]), int(padded[4:6]), int(padded[6:8])) + datetime.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    shifted = f"{day.year:04d}{day.month:02d}{day.day:02d}"[:digits]
    return shifted + text[digits:] if vr == "DT" else shifted


def _values(elem: DataElement) -> list[Any]:
    value = elem.value
    if value is None or value == "" or value == b"":
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


class _Walker:
    """Applies the profile to one dataset tree, recording every change."""

    def __init__(self, ctx: DeidContext, patient_key: str) -> None:
        self.ctx = ctx
        self.offset = ctx.date_offset(patient_key)
        self.changes: list[DeidChange] = []

    def record(self, tag: int, keyword: str, action: str, path: str) -> None:
        self.changes.append(DeidChange(_tag_str(tag), keyword, action, path))

    def process(self, ds: Dataset, path: str = "", nested: bool = False, is_meta: bool = False) -> None:
        ctx = self.ctx
        has_patient = _PATIENT_ID in ds or _PATIENT_NAME in ds
        pseudonym = ctx.pseudonym(_patient_key(ds)) if has_patient else ""
        kept_private = self._kept_private(ds)
        for elem in list(ds):
            tag, vr = int(elem.tag), elem.VR
            entry = BASIC_PROFILE.get(tag)
            keyword = entry.keyword if entry else ("" if elem.tag.is_private else keyword_for_tag(tag))
            if elem.tag.is_private:
                if tag in kept_private:
                    self._recurse(elem, path)
                else:
                    del ds[tag]
                    self.record(tag, "", "remove_private", path)
                continue
            if _is_repeating_group(tag >> 16) or ((tag & 0xFFFF) == 0 and not is_meta):
                del ds[tag]  # overlay / curve groups, and group lengths that the removals would falsify
                self.record(tag, keyword, "remove", path)
                continue
            if tag in (_PATIENT_ID, _PATIENT_NAME):
                elem.value = pseudonym
                self.record(tag, keyword, "pseudonym", path)
                continue
            if ctx.shifts_dates and tag not in _NEVER_SHIFTED and not is_meta:
                if vr in ("DA", "DT"):
                    self._shift(elem, keyword, path)
                    continue
                if vr == "TM" and entry is not None:
                    continue  # times are kept when dates are shifted
            if entry is None:
                self._recurse(elem, path)
                continue
            action = (_NESTED_ACTIONS if nested else _TOP_LEVEL_ACTIONS)[tag]
            self._apply(ds, elem, action, keyword, path)

    def _kept_private(self, ds: Dataset) -> set[int]:
        kept: set[int] = set()
        for tag in ds.keys():
            if not tag.is_private:
                continue
            tag = int(tag)
            element = tag & 0xFFFF
            if 0x0010 <= element <= 0x00FF:
                if self.ctx.keeps_private(tag, None):  # a private creator listed by its exact tag
                    kept.add(tag)
                continue
            creator_tag = (tag & 0xFFFF0000) | (element >> 8)
            creator = ds[creator_tag].value if element >= 0x1000 and creator_tag in ds else None
            if isinstance(creator, bytes):  # a private creator read with VR UN
                creator = creator.decode("latin-1").rstrip("\x00 ")
            if self.ctx.keeps_private(tag, None if creator is None else str(creator)):
                kept.add(tag)
                if creator is not None:
                    kept.add(creator_tag)
        return kept

    def _recurse(self, elem: DataElement, path: str) -> None:
        if elem.VR == "SQ" and elem.value:
            for index, item in enumerate(elem.value):
                self.process(item, f"{path}{'.' if path else ''}{_tag_str(int(elem.tag))}[{index}]", nested=True)

    def _shift(self, elem: DataElement, keyword: str, path: str) -> None:
        values = _values(elem)
        if not values:
            return
        shifted = [_shift_date_text(str(value), self.offset, elem.VR) for value in values]
        if any(value is None for value in shifted):
            elem.value = elem.empty_value  # unparseable dates cannot be shifted: empty them
            self.record(int(elem.tag), keyword, "empty", path)
        else:
            elem.value = shifted if len(shifted) > 1 else shifted[0]
            self.record(int(elem.tag), keyword, "shift_date", path)

    def _apply(self, ds: Dataset, elem: DataElement, action: str, keyword: str, path: str) -> None:
        tag, vr = int(elem.tag), elem.VR
        if action in ("K", "C"):
            self._recurse(elem, path)
        elif action == "X":
            del ds[tag]
            self.record(tag, keyword, "remove", path)
        elif action == "U":
            if vr == "SQ":
                self._recurse(elem, path)  # X/Z/U*: keep the reference sequence, replace the UIDs inside
                return
            values = _values(elem)
            if values:
                new = [self.ctx.map_uid(str(value)) for value in values]
                elem.value = new if len(new) > 1 else new[0]
                self.record(tag, keyword, "replace_uid", path)
        elif not _values(elem):
            return  # already empty: as valid as a dummy for a type 2 attribute, and identifies nothing
        elif action == "Z" or vr == "SQ":  # a sequence to replace by a dummy is emptied
            elem.value = elem.empty_value
            self.record(tag, keyword, "empty", path)
        else:  # "D"
            elem.value = _DUMMY_BY_VR.get(vr, _DUMMY_TEXT)
            self.record(tag, keyword, "dummy", path)


def _check_burned_in(ds: Dataset, ctx: DeidContext) -> None:
    name = str(getattr(ds, "filename", None) or "<in-memory dataset>")
    burned_in = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned_in == "YES":
        if not ctx.allow_burned_in:
            raise BurnedInAnnotationError(
                f"{name} declares BurnedInAnnotation YES: its pixels may show patient data, which this profile does "
                "not clean; refused (pass allow_burned_in=True after checking the pixels).",
                path=name,
            )
        message = f"{name}: BurnedInAnnotation is YES; kept as allowed, its pixels were not cleaned."
    elif not burned_in and str(ds.get("Modality", "") or "").strip().upper() in _BURNED_IN_MODALITIES:
        message = (
            f"{name}: modality {str(ds.Modality).strip()} without BurnedInAnnotation; its pixels may show patient "
            "data, check them."
        )
    else:
        return
    logger.warning(message)
    ctx.warnings.append(message)


def _set_deid_attributes(ds: Dataset, ctx: DeidContext, record: Any) -> None:
    keys = ["basic"] + (["dates"] if ctx.shifts_dates else []) + (["private"] if ctx.keep_private_tags else [])
    items = []
    for key in keys:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = _METHOD_CODES[key]
        item.CodingSchemeDesignator = "DCM"
        items.append(item)
    method = ["DICOM PS3.15 E.1 Basic Application Level Conf. Profile"]
    if ctx.shifts_dates:
        method.append("dates shifted per patient")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = method if len(method) > 1 else method[0]
    ds.DeidentificationMethodCodeSequence = items
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if ctx.shifts_dates else "REMOVED"
    for keyword in (
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
        "LongitudinalTemporalInformationModified",
    ):
        record(int(ds[keyword].tag), keyword, "set", "")


def anonymize_dataset(ds: Dataset, ctx: DeidContext | None = None) -> list[DeidChange]:
    """De-identify a dataset in place with the Basic Application Level Confidentiality Profile.

    Applies :data:`BASIC_PROFILE` at every nesting level (sequences included) and to the file meta information
    (Media Storage SOP Instance UID gets the same new UID as SOP Instance UID), removes private attributes not kept by
    the context, pseudonymizes Patient ID / Patient's Name, shifts or removes dates, and sets Patient Identity Removed,
    De-identification Method (Code Sequence) and Longitudinal Temporal Information Modified. Pixel data is not touched.

    Args:
        ds: the dataset, modified in place (``ds.file_meta`` too, when present).
        ctx: the run's context (UID map, pseudonyms, date offsets, options); ``None`` makes a fresh one with a random
            salt. Use one context for all datasets that must stay linked.

    Returns:
        The changes, one :class:`DeidChange` per changed attribute, without any original value.

    Raises:
        BurnedInAnnotationError: ``ds`` declares ``BurnedInAnnotation == "YES"`` and ``ctx.allow_burned_in`` is False
            (nothing is modified then).

    Example::

        ds = pydicom.dcmread("ct.dcm")
        changes = anonymize_dataset(ds, DeidContext(salt="secret"))
        ds.save_as("ct_anon.dcm")
    """
    if not isinstance(ds, Dataset):
        raise ValueError(f"ds must be a pydicom Dataset, got {type(ds).__name__}.")
    ctx = DeidContext() if ctx is None else ctx
    _check_burned_in(ds, ctx)
    walker = _Walker(ctx, _patient_key(ds))
    walker.process(ds)
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None and len(file_meta):
        walker.process(file_meta, is_meta=True)
        if "SOPInstanceUID" in ds:
            file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    _set_deid_attributes(ds, ctx, walker.record)
    return walker.changes


def _looks_like_dicom(path: Path) -> bool:
    if path.suffix.lower() in _DICOM_SUFFIXES or path.name == "DICOMDIR":
        return True
    try:
        with open(path, "rb") as fh:
            header = fh.read(132)
    except OSError:
        return False
    return header[128:132] == b"DICM"


def _check_complete(ds: Dataset, path: Path) -> None:
    """Raise when the parse did not cover the file exactly: pydicom silently accepts truncated files."""
    size, end = path.stat().st_size, None
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement):
            end = None  # a parsed sequence: its end offset is unknown
            continue
        length = len(raw.value) if raw.value is not None else 0
        if raw.length == 0xFFFFFFFF:
            end = raw.value_tell + length + 8  # encapsulated data and its sequence delimiter
        elif length < raw.length:
            raise UnreadableFileError(f"{path} is truncated inside {_tag_str(int(tag))}.", path=path)
        else:
            end = raw.value_tell + raw.length
    if end is not None and end > size:
        raise UnreadableFileError(f"{path} is truncated: its last element ends past the end of the file.", path=path)
    if end is not None and end < size:
        with open(path, "rb") as fh:
            fh.seek(end)
            while chunk := fh.read(1 << 20):
                if chunk.strip(b"\x00"):  # null padding is tolerated, anything else is a cut element
                    raise UnreadableFileError(f"{path} is truncated: {size - end} trailing bytes remain.", path)
    if "Rows" in ds and not any(tag in ds for tag in _PIXEL_TAGS):
        raise UnreadableFileError(f"{path} declares an image (Rows) but holds no pixel data: truncated?", path=path)


def _read_dicom(path: Path) -> Dataset:
    try:
        ds = pydicom.dcmread(str(path), force=True)
    except Exception as err:  # pydicom raises many types on corrupt input
        raise UnreadableFileError(
            f"{path} is not a readable DICOM file: {type(err).__name__}: {err}", path=path
        ) from err
    meta = getattr(ds, "file_meta", None)
    if "SOPClassUID" not in ds and (meta is None or "MediaStorageSOPClassUID" not in meta):
        raise UnreadableFileError(f"{path} is not a DICOM file: it has no SOP Class UID.", path=path)
    _check_complete(ds, path)
    return ds


def _save_dataset(ds: Dataset, fh: Any) -> None:
    """Write ``ds`` as a DICOM file (preamble + file meta) in its original transfer syntax."""
    meta = ds.file_meta if getattr(ds, "file_meta", None) is not None else FileMetaDataset()
    ds.file_meta = meta
    if "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (None, None))
        implicit = getattr(ds, "is_implicit_VR", True) if implicit is None else implicit
        little = getattr(ds, "is_little_endian", True) if little is None else little
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    if "enforce_file_format" in inspect.signature(ds.save_as).parameters:  # pydicom >= 3
        ds.save_as(fh, enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.x
        ds.save_as(fh, write_like_original=False)


def _atomic_write(out: Path, write: Any, text: bool = False) -> None:
    """Write ``out`` atomically through ``write(file)`` (mode 0o644), creating its folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, write, text=text, permissions=0o644)


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _plan(src: Path, dst: Path) -> tuple[list[tuple[Path, Path, str]], list[dict[str, str]]]:
    """Pair each input file with its output path (and its report name); list the non-DICOM files skipped."""
    if src.is_file():
        out = dst / src.name if dst.is_dir() else dst
        if out.resolve() == src.resolve():
            raise ValueError(f"dst must differ from src, got the same file {src}.")
        return [(src, out, out.name)], []
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"dst must be a folder when src is a folder, got the file {dst}.")
    if _is_within(dst, src):
        raise ValueError(f"dst must not lie inside src (outputs are never written into the input tree), got {dst}.")
    pairs, skipped = [], []
    for path in sorted(src.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(src).parts):
            continue
        if _looks_like_dicom(path):
            rel = path.relative_to(src)
            if _is_within(dst / rel, src):
                raise ValueError(f"dst {dst} would place output {dst / rel} inside src {src}.")
            pairs.append((path, dst / rel, rel.as_posix()))
        else:
            skipped.append({"file": str(path), "reason": "not a DICOM file (no .dcm suffix, no DICM preamble)"})
    return pairs, skipped


def anonymize(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    date_shift_days: DateShift = None,
    keep_private_tags: Sequence[str] = (),
    allow_burned_in: bool = False,
    uid_root: str | None = None,
    salt: str | None = None,
    report_csv: str | os.PathLike | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """De-identify a DICOM file or a folder of DICOM files (recursively) into ``dst``.

    A folder is mirrored: ``src/a/b.dcm`` becomes ``dst/a/b.dcm``; files that are neither ``.dcm`` / ``.dicom`` /
    ``.dic`` / ``.ima`` nor carry the ``DICM`` preamble are skipped, hidden files ignored. One :class:`DeidContext`
    serves the whole run, so UIDs, pseudonyms and date offsets are consistent across files and studies stay linked.
    Each output is written to a temporary file and moved into place, so an output is either complete or absent.

    Args:
        src: a DICOM file or a folder; never written to.
        dst: the output file or folder (an existing folder receives ``src``'s file name when ``src`` is a file); must
            not lie inside ``src``.
        date_shift_days: ``None`` (dates removed or emptied as the profile says), an int number of days, or ``"auto"``
            (a per-patient offset in [-3652, -365] days derived from the salt); see :class:`DeidContext`.
        keep_private_tags: private attributes to keep (``"gggg,eeee"`` or ``'gggg,"CREATOR",ee'``); all others go.
        allow_burned_in: process files with ``BurnedInAnnotation == "YES"`` instead of refusing them.
        uid_root: prefix of the new UIDs (ending with ``"."``); ``None`` gives ``"2.25.<int>"`` UIDs.
        salt: secret for the UID / pseudonym / offset hashes; the same salt reproduces the same output. ``None`` draws
            a random one.
        report_csv: where to write the CSV report (columns ``file, tag, keyword, action, path``: one row per changed
            attribute, ``file`` relative to ``dst``; never an original value); ``None`` writes no report.
        skip_bad: skip unreadable or truncated files, and refused burned-in files, recording why, instead of raising.
        overwrite: replace existing outputs (and report); otherwise any existing one raises before anything is written.

    Returns:
        A summary dict: ``"written"`` (output paths), ``"skipped"`` (``{"file", "reason"}`` dicts), ``"warnings"``
        (e.g. ultrasound without Burned In Annotation), ``"report_csv"`` (its path or ``None``) and ``"num_changes"``.

    Raises:
        MissingFileError: ``src`` does not exist.
        ValueError: bad options, or ``dst`` inside ``src``.
        FileExistsError: an output exists and ``overwrite`` is False.
        UnreadableFileError: a file is corrupt or truncated (unless ``skip_bad``); it names the file.
        BurnedInAnnotationError: a file declares burned-in annotations (unless ``allow_burned_in`` or ``skip_bad``).

    Example::

        summary = anonymize("raw/", "anon/", date_shift_days="auto", salt="secret", report_csv="anon_report.csv")
        print(len(summary["written"]), summary["skipped"])
    """
    src_path, dst_path = Path(src), Path(dst)
    if not src_path.exists():
        raise MissingFileError(f"src {src_path} does not exist.", path=src_path)
    ctx = DeidContext(
        salt=salt,
        uid_root=uid_root,
        date_shift_days=date_shift_days,
        keep_private_tags=keep_private_tags,
        allow_burned_in=allow_burned_in,
    )
    pairs, skipped = _plan(src_path, dst_path)
    report_path = None if report_csv is None else Path(report_csv)
    if report_path is not None and src_path.is_dir() and _is_within(report_path, src_path):
        raise ValueError(f"report_csv must not lie inside src, got {report_path}.")
    if not overwrite:
        for existing in [out for _, out, _ in pairs] + ([report_path] if report_path is not None else []):
            if existing.exists():
                raise FileExistsError(f"{existing} exists; pass overwrite=True to replace it.")

    written: list[str] = []
    rows: list[tuple[str, str, str, str, str]] = []
    for path, out, rel in pairs:
        try:
            ds = _read_dicom(path)
            try:
                changes = anonymize_dataset(ds, ctx)
            except DataError:
                raise
            except Exception as err:
                # the message names the error type only: pydicom's messages may quote original values
                raise UnreadableFileError(f"{path} could not be de-identified ({type(err).__name__}).", path) from err
        except (UnreadableFileError, BurnedInAnnotationError) as err:
            if not skip_bad:
                raise
            skipped.append({"file": str(path), "reason": str(err)})
            logger.warning("skipped %s", err)
            continue
        _atomic_write(out, lambda fh, ds=ds: _save_dataset(ds, fh))
        written.append(str(out))
        rows.extend((rel, change.tag, change.keyword, change.action, change.path) for change in changes)

    if report_path is not None:

        def _write_report(fh: Any) -> None:
            writer = csv.writer(fh)
            writer.writerow(("file", "tag", "keyword", "action", "path"))
            writer.writerows(rows)

        _atomic_write(report_path, _write_report, text=True)
    logger.info("de-identified %d file(s) into %s, skipped %d", len(written), dst_path, len(skipped))
    return {
        "written": written,
        "skipped": skipped,
        "warnings": list(ctx.warnings),
        "report_csv": None if report_path is None else str(report_path),
        "num_changes": len(rows),
    }
