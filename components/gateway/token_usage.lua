-- llmplane token usage: an Envoy Lua HTTP filter (Envoy Gateway EnvoyExtensionPolicy) on every model route.
--
-- On the request it asks vLLM for the usage of streamed answers (`stream_options.include_usage`, which vLLM
-- answers with a last SSE chunk carrying `usage`; a client cannot switch it off and so escape its budget),
-- and notes the tenant (from the client id the API-key filter forwards) and the model asked for.
-- On the response it names the model that answered in `x-llmplane-model` and reads vLLM's OpenAI `usage`
-- (`prompt_tokens`, `completion_tokens`, `total_tokens`) from the JSON body or the SSE stream, chunk by chunk
-- without buffering the answer, into dynamic metadata `llmplane.usage`: the global rate limiter charges
-- `total_tokens` to the tenant's budget and the access log writes every field.
--
-- Written for Lua 5.1 (Envoy runs LuaJIT); the tests run it under Lua 5.4 too. JSON is scanned, not decoded
-- (Envoy's Lua has no JSON library): a key counts only as `"key":` after `{` or `,`; text inside a JSON string
-- cannot look like that, since its quotes are escaped there.

local NAMESPACE = "llmplane.usage"
local CLIENT_HEADER = "x-llmplane-client"
local REWRITE_HEADER = "x-gateway-model-name-rewrite"
local SERVED_BY_HEADER = "x-llmplane-served-by"
local MODEL_HEADER = "x-llmplane-model"
local CARRY_BYTES = 4096 -- kept from one chunk to the next: a `usage` object split across chunks is found whole
local FIELDS = { "prompt_tokens", "completion_tokens", "total_tokens" }

local usage = {}

-- The object that follows the last `"key": {` of `text`, braces included; nil if none or if it is cut off.
local function last_object(text, key)
  local pattern = '[{,]%s*"' .. key .. '"%s*:%s*{'
  local open, init = nil, 1
  while true do
    local _, stop = string.find(text, pattern, init)
    if not stop then break end
    open, init = stop, stop + 1
  end
  if not open then return nil end
  local depth, at = 1, open
  while true do
    at = string.find(text, "[{}]", at + 1)
    if not at then return nil end
    if string.sub(text, at, at) == "{" then depth = depth + 1 else depth = depth - 1 end
    if depth == 0 then return string.sub(text, open, at) end
  end
end

-- vLLM's `usage` (the last one in `text`: a JSON answer, or SSE text whose final chunk carries it) as
-- {prompt_tokens, completion_tokens, total_tokens}, or nil when `text` holds none.
function usage.parse_usage(text)
  local object = last_object(text, "usage")
  if not object then return nil end
  local found = {}
  for _, field in ipairs(FIELDS) do
    local n = string.match(object, '"' .. field .. '"%s*:%s*(%d+)')
    if n then found[field] = tonumber(n) end
  end
  local prompt, completion, total = found.prompt_tokens, found.completion_tokens, found.total_tokens
  if total == nil and prompt ~= nil and completion ~= nil then found.total_tokens = prompt + completion end
  if completion == nil and prompt ~= nil and total ~= nil then found.completion_tokens = total - prompt end
  if found.total_tokens == nil then return nil end
  found.prompt_tokens = found.prompt_tokens or 0
  return found
end

-- The first `"model": "<name>"` of a request or answer body, or nil.
function usage.parse_model(text)
  return string.match(text, '[{,]%s*"model"%s*:%s*"([^"\\]+)"')
end

-- Whether a request body asks for a streamed answer.
function usage.is_streaming(text)
  return string.find(text, '[{,]%s*"stream"%s*:%s*true') ~= nil
end

-- The request body with `stream_options.include_usage` true, or nil when it needs no change (not streamed,
-- or already asking for usage).
function usage.with_usage_requested(text)
  if not usage.is_streaming(text) then return nil end
  if string.find(text, '[{,]%s*"include_usage"%s*:%s*true') then return nil end
  for _, off in ipairs({ "false", "null" }) do
    local flipped, n = string.gsub(text, '([{,]%s*"include_usage"%s*:%s*)' .. off, "%1true", 1)
    if n > 0 then return flipped end
  end
  local _, open = string.find(text, '[{,]%s*"stream_options"%s*:%s*{')
  if open then
    local rest = string.sub(text, open + 1)
    local separator = string.find(rest, "^%s*}") and "" or ","
    return string.sub(text, 1, open) .. '"include_usage":true' .. separator .. rest
  end
  local replaced, n = string.gsub(text, '([{,]%s*"stream_options"%s*:%s*)null', '%1{"include_usage":true}', 1)
  if n > 0 then return replaced end
  local start = string.find(text, "{", 1, true)
  return string.sub(text, 1, start) .. '"stream_options":{"include_usage":true},' .. string.sub(text, start + 1)
end

-- `model@version/cluster` (the header the route's backendRef sets) as model, version, cluster; nil if malformed.
function usage.parse_served_by(value)
  return string.match(value, "^([^@]+)@([^/]+)/(.+)$")
end

-- The tenant of a client id `<tenant>.<key name>`.
function usage.tenant_of(client)
  return string.match(client, "^([^.]+)%.") or client
end

local function record(meta, found)
  for _, field in ipairs(FIELDS) do meta:set(NAMESPACE, field, found[field]) end
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local meta = request_handle:streamInfo():dynamicMetadata()
  local client = headers:get(CLIENT_HEADER)
  if client then meta:set(NAMESPACE, "tenant", usage.tenant_of(client)) end
  local model = headers:get(REWRITE_HEADER)
  local body = request_handle:body()
  if body and body:length() > 0 then
    local text = body:getBytes(0, body:length())
    model = model or usage.parse_model(text)
    local rewritten = usage.with_usage_requested(text)
    if rewritten then
      body:setBytes(rewritten)
      if headers:get("content-length") then headers:replace("content-length", tostring(#rewritten)) end
    end
  end
  if model then meta:set(NAMESPACE, "model", model) end
end

function envoy_on_response(response_handle)
  local headers = response_handle:headers()
  local meta = response_handle:streamInfo():dynamicMetadata()
  local asked = meta:get(NAMESPACE) or {}
  local served = headers:get(SERVED_BY_HEADER)
  local served_model, version, cluster
  if served then served_model, version, cluster = usage.parse_served_by(served) end
  if version then
    meta:set(NAMESPACE, "version", version)
    meta:set(NAMESPACE, "cluster", cluster)
  end
  -- A gateway further along a failover chain has already named the model; otherwise the pool that answered,
  -- else the model the request was routed with (what vLLM echoes as the body's `model`).
  local answered = headers:get(MODEL_HEADER) or served_model or asked.model
  if answered then
    headers:replace(MODEL_HEADER, answered)
    meta:set(NAMESPACE, "model", answered)
  end
  local carry = ""
  for chunk in response_handle:bodyChunks() do
    local text = carry .. chunk:getBytes(0, chunk:length())
    local found = usage.parse_usage(text)
    if found then record(meta, found) end
    carry = string.sub(text, -CARRY_BYTES)
  end
end

LLMPLANE_TOKEN_USAGE = usage
