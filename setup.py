"""Builds the compiled extension vkdnw_fast._C (metadata lives in pyproject.toml).

CPU kernels always; the CUDA kernels as well when torch was built with CUDA and a toolkit is found.
    python setup.py build_ext --inplace      or      pip install --no-build-isolation -e .
"""
import glob
import os
import platform

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))
# -g0 overrides the -g of Python's CFLAGS: a quarter less compile time and a 200 KiB library
# instead of 7.6 MiB of debug information.
CXX_FLAGS = ["-O3", "-g0"]
# binary_gram counts bits with __builtin_popcountll: one instruction where the target has it (every
# x86-64 since 2008 does, but the compiler may only use it when told), a bit-twiddling loop otherwise.
if platform.machine().lower() in ("x86_64", "amd64"):
    CXX_FLAGS.append("-mpopcnt")
# A toolchain that links libstdc++ statically (as, by every sign, the H200 image's /opt/gcc does) puts a second
# copy of it in the extension; Python's -Bsymbolic-functions binds that copy's functions locally but its data
# (the locale's facet ids) to torch's copy, and formatting a number into an error message crashed there (here,
# built with -static-libstdc++, the message is silently cut short). Not exporting the archive's symbols keeps
# such a copy whole; with a shared libstdc++, the usual case, there is nothing to hide.
LINK_FLAGS = ["-Wl,--exclude-libs,ALL"] if platform.system() == "Linux" else []


def _sources(*patterns):
    # setuptools wants source paths relative to setup.py.
    return sorted(os.path.relpath(path, ROOT) for pattern in patterns for path in glob.glob(os.path.join(ROOT, pattern)))


def extension():
    sources = _sources("csrc/*.cpp", "csrc/cpu/*.cpp")
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    if torch.version.cuda is not None and CUDA_HOME is not None:
        return CUDAExtension(
            "vkdnw_fast._C",
            sources + _sources("csrc/cuda/*.cpp", "csrc/cuda/*.cu"),
            include_dirs=include_dirs,
            extra_compile_args={"cxx": CXX_FLAGS, "nvcc": ["-O3"]},
            extra_link_args=LINK_FLAGS,
        )
    return CppExtension("vkdnw_fast._C", sources, include_dirs=include_dirs, extra_compile_args={"cxx": CXX_FLAGS},
                        extra_link_args=LINK_FLAGS)


setup(
    packages=find_packages(include=["vkdnw_fast*"]),
    package_data={"vkdnw_fast": ["data/*.csv.gz", "data/README.md"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
)
