"""Reading DICOM: index an archive, choose a study's series, load them as images in LPS mm.

``index`` (headers only: patient -> study -> series), ``plan`` (which PET, CT, MR
and RTSTRUCT make up one run), ``volume`` (one series -> one SimpleITK image with
its per-slice geometry), ``pet`` with ``suv`` (PET as body-weight SUV, computed
once at load), ``tracer`` (the agent from the header), ``limits`` (ceilings for
untrusted files) and ``dicomweb`` (fetch a study from a DICOMweb server).
"""
