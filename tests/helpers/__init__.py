"""Helpers shared by several test modules (imported as ``helpers.<module>``).

- ``helpers.tools``: external programs (dciodvfy, dcm2niix, Orthanc, chromium) and the rule for
  when one is missing;
- ``helpers.contract``: findings.json against the package's own schema;
- ``helpers.data``: repository paths and tree digests (the small two-patient archive is built by
  ``benchmarks.kill_and_resume.build_small_archive``, shared with the crash benchmark);
- ``helpers.images``: small CT slices, label images, findings and RTSTRUCTs built in memory;
- ``helpers.pet_headers``: the SUV test case's PET headers (the worked example of docs/suv.md#definitions).

DICOM files themselves are built with ``localize.sample_data.dicom_writer`` (``one_slice``,
``image_series``, ``save`` ...), the one writer shared by the phantom, the tests and the benchmarks.
"""
