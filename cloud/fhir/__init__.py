"""FHIR R4 health records following the HL7 Personal Health Device IG (docs/fhir.md).

Pure mapping from stored facts (readings, persons, devices, gateways) to FHIR JSON resources,
plus the search-parameter parsing of the FHIR API. No I/O: the service
(:mod:`cloud.services.fhir`) loads rows, checks access and audits; the routes
(:mod:`cloud.api.routes.fhir`) speak HTTP.

* :mod:`cloud.fhir.codes`: code systems and codes (MDC, LOINC, UCUM...)
* :mod:`cloud.fhir.model`: the input facts and the caller's disclosure
* :mod:`cloud.fhir.identifiers`: EUI-64, PHD composite identifiers, resource ids
* :mod:`cloud.fhir.observation`: readings as Observations
* :mod:`cloud.fhir.resources`: Patient, Device, Bundle, OperationOutcome
* :mod:`cloud.fhir.search`: search parameters and paging
"""

from __future__ import annotations
