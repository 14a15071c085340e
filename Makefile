# Dangan — the two set-up commands (see README.md).
#   make demo   creates .venv, installs, makes a sample transfer, ingests it, serves the portal
#   make test   creates .venv, installs with test extras, runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DANGAN_HOME ?= $(CURDIR)/dangan-home
PYTEST_ARGS ?=

.PHONY: demo test fuzz venv install install-test bench clean viewer apidocs messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python

install: venv viewer apidocs
	$(BIN)/pip install -q -e .

install-test: venv viewer apidocs
	$(BIN)/pip install -q -e '.[test]'

# the record pages' image viewer (IIIF), OpenSeadragon from the npm registry, pinned: npm pack
# checks the tarball against the registry's integrity hash. Not committed; without npm the
# record pages say the viewer is missing.
OSD_VERSION := 6.1.1
VIEWER := access/portal/static/vendor/openseadragon
viewer: $(VIEWER)/openseadragon.min.js

$(VIEWER)/openseadragon.min.js:
	@if command -v npm >/dev/null; then \
	  rm -rf $(VIEWER) && mkdir -p $(VIEWER) && cd $(VIEWER) && \
	  npm pack --silent openseadragon@$(OSD_VERSION) >/dev/null && \
	  tar xzf openseadragon-$(OSD_VERSION).tgz package/LICENSE.txt package/build/openseadragon && \
	  mv package/build/openseadragon/openseadragon.min.js package/build/openseadragon/images \
	     package/LICENSE.txt . && rm -rf package openseadragon-$(OSD_VERSION).tgz; \
	else echo "npm not found: the IIIF viewer (OpenSeadragon) is not installed"; fi

# the rendered API documentation (/api-docs): Swagger UI from the npm registry, pinned and
# checked like the viewer. Not committed; without it the page lists the operations itself
# and says Swagger UI is missing.
SWAGGER_UI_VERSION := 5.35.0
APIDOCS := access/portal/static/vendor/swagger-ui
apidocs: $(APIDOCS)/swagger-ui-bundle.js

$(APIDOCS)/swagger-ui-bundle.js:
	@if command -v npm >/dev/null; then \
	  rm -rf $(APIDOCS) && mkdir -p $(APIDOCS) && cd $(APIDOCS) && \
	  npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) >/dev/null && \
	  tar xzf swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz package/LICENSE package/NOTICE \
	      package/swagger-ui-bundle.js package/swagger-ui.css && \
	  mv package/swagger-ui-bundle.js package/swagger-ui.css package/LICENSE package/NOTICE . && \
	  rm -rf package swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz; \
	else echo "npm not found: the API documentation browser (Swagger UI) is not installed"; fi

# the portal's English catalogue: compile messages.po into messages.mo (both committed).
# tests/access/test_portal_auth.py lists every string marked in the code and templates
# (access/portal/babel.cfg) that messages.po does not translate yet. Not pybabel update: it
# would drop the profiles' field names, which are translated at run time, as obsolete.
messages: venv
	$(BIN)/pybabel -q compile -d access/portal/translations

DEMO_PASSWORD ?= dangan-demo-2026
# the formats make demo migrates after ingest: DOC, DOCX, XLS (LibreOffice), TIFF (Pillow)
DEMO_MIGRATE ?= fmt/40 fmt/412 fmt/61 fmt/353
export DEMO_PASSWORD

demo: install
	@rm -rf sample-transfer
	@echo "[1/5] 生成示例移交 making a sample transfer of 20 households (sample-transfer/)"
	$(BIN)/dangan sample-transfer sample-transfer --households 20 --seed 1
	@echo "[2/5] 接收 ingesting it: checks, AIPs, storage, catalogue (OCR of scans is queued)"
	$(BIN)/dangan ingest sample-transfer
	@echo "[3/5] 保存规划 preservation planning: the DOC, DOCX, XLS and TIFF files get PDF/A, XLSX and"
	@echo "      JPEG derivatives, each run a new version of the AIPs it changes (dangan formats report lists the rest)"
	@for puid in $(DEMO_MIGRATE); do \
	  $(BIN)/dangan migrate --puid $$puid --reason "示例：办公文档转版式文件，图像生成利用版本" || \
	    echo "      ($$puid 未迁移：见上文原因 not migrated, reason above)"; \
	done
	@echo "[4/5] 演示账号 demo accounts"
	@$(BIN)/dangan user list 2>/dev/null | grep -q '^archivist ' || \
	  $(BIN)/dangan user add archivist --role archivist --name 演示档案员 --password-env DEMO_PASSWORD
	@$(BIN)/dangan user list 2>/dev/null | grep -q '^researcher ' || \
	  $(BIN)/dangan user add researcher --role researcher --name 演示研究者 --password-env DEMO_PASSWORD
	@echo
	@echo "Portal: http://127.0.0.1:$${DANGAN_PORTAL_PORT:-5000}/   try: /search?q=因病 (signed in as archivist)"
	@echo "Demo accounts (this machine only): archivist / researcher, password $(DEMO_PASSWORD)"
	@echo "Household files are restricted: sign in as archivist to see them in full."
	@echo "[5/5] 门户 serving the portal; the queued OCR runs in its background (records marked 全文待识别 until then)"
	$(BIN)/dangan serve

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the fuzz targets (tests/fuzz, the portal's parameters, schemathesis on /api/v1) at length
DANGAN_FUZZ_EXAMPLES ?= 2000
fuzz: install-test
	DANGAN_FUZZ_EXAMPLES=$(DANGAN_FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/fuzz \
	  tests/access/test_fuzz_portal_params.py tests/access/test_portal_api_schema.py

bench: install-test
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) dangan-home sample-transfer .pytest_cache
