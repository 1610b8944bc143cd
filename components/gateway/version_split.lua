-- llmplane version split: which version of a model answers a request, decided at the gateway before routing.
--
-- Envoy AI Gateway (v1.0 and v1.1) accepts one InferencePool per HTTPRoute rule, so a canary cannot be a weighted
-- rule over two pools. Instead each version has a rule of its own that matches `x-llmplane-version`, and this
-- filter sets that header from the model's weights, then asks Envoy to match the route again
-- (`clearRouteCache`). The assignment is sticky: a hash of the tenant and the user the client names in
-- `x-llmplane-user` (the same user stays on one version across requests, replicas and gateways); a request
-- without a user is placed by its request id. A/B versions can be pinned with `x-llmplane-variant`. Whatever a
-- client sends in `x-llmplane-version` is replaced: clients pick versions only through the variant header.
--
-- The table below is written by components/gateway/version_split.py from the environment's weights:
-- SPLITS[model] = list of {version, percent}, one line each; PINNABLE[model][version] = true for A/B versions.
-- Runs under LuaJIT (Envoy) and Lua 5.4 (the tests): arithmetic only, no bit operations.

local VERSION_HEADER = "x-llmplane-version"
local USER_HEADER = "x-llmplane-user"
local CLIENT_HEADER = "x-llmplane-client"
local VARIANT_HEADER = "x-llmplane-variant"
local BUCKETS = 100
local MODULUS = 2147483647

-- LLMPLANE_SPLITS

LLMPLANE_VERSION_SPLIT = {}
local split = LLMPLANE_VERSION_SPLIT

-- A 31-bit polynomial hash of a string: exact in doubles (h * 131 + 255 < 2^53), so LuaJIT and Lua 5.4 agree.
function split.bucket(key)
  local h = 0
  for i = 1, #key do
    h = (h * 131 + string.byte(key, i)) % MODULUS
  end
  return h % BUCKETS
end

function split.version_for(model, bucket)
  local versions = SPLITS[model]
  if versions == nil then return nil end
  local upto = 0
  for _, entry in ipairs(versions) do
    upto = upto + entry[2]
    if bucket < upto then return entry[1] end
  end
  return versions[#versions][1]
end

-- The model a request is for: `/<model>/v1/...`.
function split.target(path)
  if path == nil then return nil end
  return string.match(path, "^/([^/?]+)/v1/")
end

function split.assign(headers)
  local model = split.target(headers:get(":path"))
  if model == nil or SPLITS[model] == nil then return nil end
  local variant = headers:get(VARIANT_HEADER)
  if variant ~= nil and PINNABLE[model] ~= nil and PINNABLE[model][variant] then return variant end
  local user = headers:get(USER_HEADER)
  local key
  if user ~= nil and user ~= "" then
    key = (headers:get(CLIENT_HEADER) or "") .. "/" .. user
  else
    key = headers:get("x-request-id") or ""
  end
  return split.version_for(model, split.bucket(model .. "|" .. key))
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  headers:remove(VERSION_HEADER)
  local version = split.assign(headers)
  if version ~= nil then
    headers:replace(VERSION_HEADER, version)
  end
  request_handle:clearRouteCache()
end
